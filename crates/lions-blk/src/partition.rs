// SPDX-License-Identifier: BSD-2-Clause
//! Partition tables (MBR and GPT) as a sans-I/O state machine: [`Partitioner`] says which bytes of
//! the disk it wants ([`Step::Read`]), the caller reads them however it can and hands them back
//! with [`Partitioner::feed`], until [`Step::Done`]. The virtualiser drives it with block reads
//! through the driver; a synchronous reader (a test, a tool) is a five-line loop.
//!
//! ## What is read and checked
//!
//! 1. **MBR** (LBA 0, 512 bytes): signature `0x55 0xAA` at 510, four 16-byte entries at 446 (type
//!    at +4, first LBA at +8, sector count at +12, little-endian). No signature: no table. An
//!    entry of type `0xEE` (protective MBR) means GPT; otherwise entry *i* (0..4, primary entries
//!    only) is partition *i*, present when its type is not 0.
//! 2. **GPT** (UEFI §5.3), for the primary header at LBA 1 and the backup header at the disk's last
//!    LBA: signature `"EFI PART"`, `HeaderSize` in 92..=sector size, `HeaderCRC32` (CRC-32/ISO-HDLC
//!    over `HeaderSize` bytes with the CRC field taken as zero), `MyLBA` = where it was read,
//!    `FirstUsableLBA` ≤ `LastUsableLBA` < disk end, `SizeOfPartitionEntry` = 128·2ⁿ ≤ 4096, the
//!    entry array inside the disk, then the array's `PartitionEntryArrayCRC32`. A copy is valid
//!    when its header and its array pass.
//!    - both valid: they must agree (each one's `AlternateLBA` is the other's `MyLBA`; disk GUID,
//!      usable range, entry count and size and array CRC equal), else [`PartitionError::GptMismatch`];
//!    - one valid: it is used (a corrupt primary with a good backup still works);
//!    - none: [`PartitionError::NoValidGpt`].
//!
//!    Entry *i* (the first [`MAX_PARTITIONS`]) is present when its type GUID is not zero; its
//!    `StartingLBA..=EndingLBA` must lie inside the usable range.
//! 3. **Units**: partitions are handed out in 4 KiB blocks. A partition whose start is not on a 4 KiB
//!    boundary is unusable (absent); a trailing partial block is cut off. Sector sizes 512..=4096
//!    (powers of two) are supported. A table that does not fit the disk is an error, an entry that
//!    does not fit is absent.

use crate::queue::BLK_TRANSFER_SIZE;

/// Partitions kept per table (GPT entries beyond this are never handed out).
pub const MAX_PARTITIONS: usize = 128;

const BLK: u64 = BLK_TRANSFER_SIZE as u64;
const MBR_LEN: usize = 512;
const GPT_HEADER_MIN: usize = 92;
const MAX_ENTRY_SIZE: u32 = 4096;

/// One partition in 4 KiB blocks of the whole disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub blocks: u64,
}

/// Which kind of table was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A classic MBR with up to four primary partitions.
    Mbr,
    /// A GPT; which of its two copies passed every check.
    Gpt {
        /// The primary header and array (LBA 1) are valid.
        primary: bool,
        /// The backup header (last LBA) and its array are valid.
        backup: bool,
    },
}

/// Why no table could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionError {
    /// The sector size is not a power of two in 512..=4096.
    SectorSize(u16),
    /// The disk is too small to hold what the table needs.
    DiskTooSmall,
    /// No `0x55AA` signature: the disk has no partition table.
    NoSignature,
    /// Neither GPT copy passed its checks.
    NoValidGpt,
    /// Both GPT copies are valid but describe different disks.
    GptMismatch,
    /// A read failed, or returned a length other than asked.
    Io,
    /// The caller's read window is smaller than 4 KiB.
    BufferTooSmall,
    /// Two partitions share blocks (entry indices), so their clients could read each other's data.
    Overlap(usize, usize),
    /// A partition (entry index) starts at sector 0, over the partition table itself.
    CoversTable(usize),
}

impl core::fmt::Display for PartitionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SectorSize(s) => write!(f, "unsupported sector size {s}"),
            Self::DiskTooSmall => write!(f, "disk too small for its partition table"),
            Self::NoSignature => write!(f, "no MBR signature"),
            Self::NoValidGpt => write!(f, "neither GPT header passes its checks"),
            Self::GptMismatch => write!(f, "primary and backup GPT headers disagree"),
            Self::Io => write!(f, "reading the partition table failed"),
            Self::BufferTooSmall => write!(f, "partition read buffer smaller than 4 KiB"),
            Self::Overlap(a, b) => write!(f, "partitions {a} and {b} overlap"),
            Self::CoversTable(i) => write!(f, "partition {i} covers sector 0 (the table)"),
        }
    }
}

impl core::error::Error for PartitionError {}

/// The partitions found, indexed as a client's `partition` config field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// The kind of table.
    pub scheme: Scheme,
    /// Entry i; `blocks` 0 = absent.
    entries: [Extent; MAX_PARTITIONS],
}

impl PartitionTable {
    /// Refuse a table whose usable partitions overlap or start at sector 0: a client given one
    /// could read or overwrite another client's partition or the table.
    fn disjoint(&self) -> Result<(), PartitionError> {
        let used = || {
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.blocks > 0)
        };
        for (i, a) in used() {
            if a.start == 0 {
                return Err(PartitionError::CoversTable(i));
            }
            // `start + blocks` fits: both come from sector numbers of a disk capped at u64::MAX
            // bytes.
            let a_end = a.start + a.blocks;
            let hit =
                used().find(|&(j, b)| j > i && b.start < a_end && a.start < b.start + b.blocks);
            if let Some((j, _)) = hit {
                return Err(PartitionError::Overlap(i, j));
            }
        }
        Ok(())
    }

    /// Partition `index`, if it exists and is usable.
    pub fn get(&self, index: u32) -> Option<Extent> {
        let e = *self.entries.get(usize::try_from(index).ok()?)?;
        (e.blocks > 0).then_some(e)
    }
}

const ABSENT: Extent = Extent {
    start: 0,
    blocks: 0,
};

/// What the partitioner needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read `len` bytes at byte `offset` of the disk and [`feed`](Partitioner::feed) them.
    Read {
        /// Byte offset on the disk.
        offset: u64,
        /// Bytes wanted.
        len: usize,
    },
    /// Finished: [`Partitioner::table`] has the result.
    Done,
}

/// A checked GPT header (the fields used after validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    my_lba: u64,
    alt_lba: u64,
    first_usable: u64,
    last_usable: u64,
    guid: [u8; 16],
    entry_lba: u64,
    entries: u32,
    entry_size: u32,
    array_crc: u32,
}

impl Header {
    fn array_len(&self) -> usize {
        // Both factors were bounded by `parse` (the product fits the disk and a usize).
        self.entries as usize * self.entry_size as usize
    }

    /// Whether two valid copies describe the same disk.
    fn agrees(&self, o: &Self) -> bool {
        self.alt_lba == o.my_lba
            && o.alt_lba == self.my_lba
            && (self.first_usable, self.last_usable, self.guid)
                == (o.first_usable, o.last_usable, o.guid)
            && (self.entries, self.entry_size, self.array_crc)
                == (o.entries, o.entry_size, o.array_crc)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Mbr,
    Header { backup: bool },
    Array { backup: bool, header: Header },
    Done,
}

/// The partition-table reader; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Partitioner {
    /// Sector size in bytes.
    ss: u64,
    /// Disk size in sectors.
    sectors: u64,
    /// Longest read from a 4 KiB boundary the caller can take at once.
    window: u64,
    state: State,
    primary: Option<Header>,
    backup: Option<Header>,
    table: PartitionTable,
    result: Result<(), PartitionError>,
}

impl Partitioner {
    /// A reader for a disk of `blocks` 4 KiB blocks with `sector_size`-byte sectors, and its first
    /// step. Every read it asks for fits `window` bytes counted from the 4 KiB boundary at or
    /// below its offset (the caller's bounce buffer); a GPT copy whose entry array does not fit
    /// counts as invalid. `window` must be at least 4 KiB.
    pub fn new(sector_size: u16, blocks: u64, window: usize) -> (Self, Step) {
        let ss = u64::from(sector_size);
        let mut p = Self {
            ss,
            // Capped so that every byte offset on the disk fits a u64.
            sectors: blocks.min(u64::MAX / BLK) * (BLK / ss.clamp(1, BLK)),
            window: window as u64,
            state: State::Mbr,
            primary: None,
            backup: None,
            table: PartitionTable {
                scheme: Scheme::Mbr,
                entries: [ABSENT; MAX_PARTITIONS],
            },
            result: Err(PartitionError::Io),
        };
        let step = if !(512..=BLK).contains(&ss) || !ss.is_power_of_two() {
            p.finish(Err(PartitionError::SectorSize(sector_size)))
        } else if p.window < BLK {
            p.finish(Err(PartitionError::BufferTooSmall))
        } else {
            p.read(0, MBR_LEN)
        };
        (p, step)
    }

    /// The table, or why there is none (`Err(Io)` until [`Step::Done`]).
    pub fn table(&self) -> Result<&PartitionTable, PartitionError> {
        self.result.map(|()| &self.table)
    }

    /// The read asked for failed.
    pub fn read_failed(&mut self) -> Step {
        self.finish(Err(PartitionError::Io))
    }

    /// The bytes of the last [`Step::Read`] (exactly the length asked for).
    pub fn feed(&mut self, data: &[u8]) -> Step {
        match self.state {
            State::Done => Step::Done,
            _ if data.len() != self.expected() => self.read_failed(),
            State::Mbr => self.mbr(data),
            State::Header { backup } => match self.header(data, backup) {
                Some(header) => self.array_read(backup, header),
                None => self.next_copy(backup),
            },
            State::Array { backup, header } => {
                if crc32(data) == header.array_crc {
                    if !backup || self.primary.is_none() {
                        self.entries(&header, data);
                    }
                    let copy = if backup {
                        &mut self.backup
                    } else {
                        &mut self.primary
                    };
                    *copy = Some(header);
                }
                self.next_copy(backup)
            }
        }
    }

    /// Length of the read [`feed`](Self::feed) is waiting for (0 when done).
    pub fn expected(&self) -> usize {
        match self.state {
            State::Mbr => MBR_LEN,
            State::Header { .. } => self.sector_len(),
            State::Array { header, .. } => header.array_len(),
            State::Done => 0,
        }
    }

    fn sector_len(&self) -> usize {
        // 512..=4096 (checked in `new`).
        usize::try_from(self.ss).unwrap_or(BLK_TRANSFER_SIZE)
    }

    /// Ask for `len` bytes at `offset`, or fail when they are not on the disk.
    fn read(&mut self, offset: u64, len: usize) -> Step {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > self.sectors * self.ss) {
            return self.finish(Err(PartitionError::DiskTooSmall));
        }
        Step::Read { offset, len }
    }

    fn finish(&mut self, result: Result<(), PartitionError>) -> Step {
        self.state = State::Done;
        self.result = result.and_then(|()| self.table.disjoint());
        Step::Done
    }

    fn mbr(&mut self, b: &[u8]) -> Step {
        if b[510..512] != [0x55, 0xAA] {
            return self.finish(Err(PartitionError::NoSignature));
        }
        let entry = |i: usize| &b[446 + 16 * i..][..16];
        if (0..4).any(|i| entry(i)[4] == 0xEE) {
            self.state = State::Header { backup: false };
            return self.read(self.ss, self.sector_len());
        }
        for (i, slot) in self.table.entries.iter_mut().take(4).enumerate() {
            let e = entry(i);
            let first = u64::from(le32(e, 8));
            let end = first + u64::from(le32(e, 12));
            if e[4] != 0 && end <= self.sectors {
                *slot = extent(self.ss, first, end);
            }
        }
        self.finish(Ok(()))
    }

    /// Check one GPT header read at its LBA.
    fn header(&self, b: &[u8], backup: bool) -> Option<Header> {
        let lba = if backup {
            self.sectors.checked_sub(1)?
        } else {
            1
        };
        let size = usize::try_from(le32(b, 12)).ok()?;
        if &b[..8] != b"EFI PART" || !(GPT_HEADER_MIN..=b.len()).contains(&size) {
            return None;
        }
        let crc = crc32_update(
            crc32_update(crc32_update(!0, &b[..16]), &[0; 4]),
            &b[20..size],
        );
        let mut guid = [0; 16];
        guid.copy_from_slice(&b[56..72]);
        let h = Header {
            my_lba: le64(b, 24),
            alt_lba: le64(b, 32),
            first_usable: le64(b, 40),
            last_usable: le64(b, 48),
            guid,
            entry_lba: le64(b, 72),
            entries: le32(b, 80),
            entry_size: le32(b, 84),
            array_crc: le32(b, 88),
        };
        let array_sectors = (u64::from(h.entries) * u64::from(h.entry_size)).div_ceil(self.ss);
        let array_end = h.entry_lba.checked_add(array_sectors)?;
        let ok = !crc == le32(b, 16)
            && h.my_lba == lba
            && h.first_usable <= h.last_usable
            && h.last_usable < self.sectors
            && h.entry_size >= 128
            && h.entry_size <= MAX_ENTRY_SIZE
            && h.entry_size.is_power_of_two()
            && h.entry_lba > 0
            && array_end <= self.sectors
            && (h.entry_lba * self.ss) % BLK + array_sectors * self.ss <= self.window;
        ok.then_some(h)
    }

    fn array_read(&mut self, backup: bool, header: Header) -> Step {
        self.state = State::Array { backup, header };
        self.read(header.entry_lba * self.ss, header.array_len())
    }

    /// Take the entries of a valid array (the primary's, or the backup's when the primary failed).
    fn entries(&mut self, h: &Header, array: &[u8]) {
        let size = h.entry_size as usize;
        for (slot, e) in self.table.entries.iter_mut().zip(array.chunks_exact(size)) {
            let (first, last) = (le64(e, 32), le64(e, 40));
            let used = e[..16].iter().any(|&b| b != 0);
            let inside = h.first_usable <= first && first <= last && last <= h.last_usable;
            *slot = if used && inside {
                extent(self.ss, first, last + 1)
            } else {
                ABSENT
            };
        }
    }

    /// After the primary copy, read the backup header; after the backup, decide.
    fn next_copy(&mut self, backup: bool) -> Step {
        if !backup {
            self.state = State::Header { backup: true };
            let last = self.sectors.saturating_sub(1);
            return self.read(last * self.ss, self.sector_len());
        }
        let (primary, backup) = (self.primary.is_some(), self.backup.is_some());
        self.table.scheme = Scheme::Gpt { primary, backup };
        let result = match (self.primary, self.backup) {
            (Some(p), Some(b)) if !p.agrees(&b) => Err(PartitionError::GptMismatch),
            (None, None) => Err(PartitionError::NoValidGpt),
            _ => Ok(()),
        };
        self.finish(result)
    }
}

/// Sectors `first..end` (of `ss` bytes) in 4 KiB blocks, absent when the start is not
/// block-aligned or no whole block is left.
fn extent(ss: u64, first: u64, end: u64) -> Extent {
    let per = BLK / ss;
    match end.checked_sub(first) {
        Some(n) if first.is_multiple_of(per) => Extent {
            start: first / per,
            blocks: n / per,
        },
        _ => ABSENT,
    }
}

/// Little-endian `u32` at `at` (callers index inside checked lengths).
fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

/// Little-endian `u64` at `at`.
fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// CRC-32/ISO-HDLC (the GPT and Ethernet CRC: reflected polynomial `0xEDB88320`, initial value and
/// final XOR all ones) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// Continue a CRC-32 whose running (not yet inverted) value is `crc`.
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC_TABLE[usize::from(crc.to_le_bytes()[0] ^ b)] ^ (crc >> 8);
    }
    crc
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};
