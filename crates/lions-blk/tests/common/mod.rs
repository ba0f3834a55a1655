// SPDX-License-Identifier: BSD-2-Clause
//! Disk images for the tests: protective-MBR GPT disks and classic MBR disks, written from the
//! UEFI and MBR layouts (not by the code under test, except for the CRC function, which is
//! checked against its published check value in `partition.rs`'s tests).
#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

pub mod sim;

use lions_blk::partition::{PartitionError, PartitionTable, Partitioner, Step, crc32};

/// A Linux filesystem data partition type GUID (any non-zero GUID marks an entry as used).
pub const LINUX_FS: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// Entries in the images' GPT arrays, and their size.
pub const ENTRIES: usize = 128;
pub const ENTRY_SIZE: usize = 128;

/// Where a GPT image keeps things, in sectors.
#[derive(Debug, Clone, Copy)]
pub struct GptLayout {
    pub ss: usize,
    pub sectors: u64,
    pub array_sectors: u64,
}

impl GptLayout {
    pub fn new(ss: usize, bytes: usize) -> Self {
        Self {
            ss,
            sectors: (bytes / ss) as u64,
            array_sectors: ((ENTRIES * ENTRY_SIZE) / ss) as u64,
        }
    }
    pub fn last(&self) -> u64 {
        self.sectors - 1
    }
    pub fn first_usable(&self) -> u64 {
        2 + self.array_sectors
    }
    pub fn last_usable(&self) -> u64 {
        self.last() - 1 - self.array_sectors
    }
    pub fn backup_array(&self) -> u64 {
        self.last() - self.array_sectors
    }
    /// Byte offset of a sector.
    pub fn at(&self, lba: u64) -> usize {
        lba as usize * self.ss
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A GPT header for the copy at `my` whose alternate is `alt` and whose array is at `array`.
pub fn gpt_header(l: &GptLayout, my: u64, alt: u64, array: u64, array_crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; l.ss];
    h[..8].copy_from_slice(b"EFI PART");
    put32(&mut h, 8, 0x0001_0000);
    put32(&mut h, 12, 92);
    put64(&mut h, 24, my);
    put64(&mut h, 32, alt);
    put64(&mut h, 40, l.first_usable());
    put64(&mut h, 48, l.last_usable());
    h[56..72].copy_from_slice(b"lions-blk-disk!!");
    put64(&mut h, 72, array);
    put32(&mut h, 80, ENTRIES as u32);
    put32(&mut h, 84, ENTRY_SIZE as u32);
    put32(&mut h, 88, array_crc);
    seal_header(&mut h);
    h
}

/// Recompute a header's CRC (after editing it).
pub fn seal_header(h: &mut [u8]) {
    let size = (u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize).min(h.len());
    put32(h, 16, 0);
    let crc = crc32(&h[..size]);
    put32(h, 16, crc);
}

/// The entry array for partitions given as inclusive sector ranges (entry i = partition i).
pub fn gpt_array(parts: &[(u64, u64)]) -> Vec<u8> {
    let mut a = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (i, &(first, last)) in parts.iter().enumerate() {
        let e = &mut a[i * ENTRY_SIZE..][..ENTRY_SIZE];
        e[..16].copy_from_slice(&LINUX_FS);
        e[16] = i as u8 + 1;
        put64(e, 32, first);
        put64(e, 40, last);
    }
    a
}

/// A protective MBR for a disk of `sectors` sectors.
pub fn protective_mbr(sectors: u64) -> [u8; 512] {
    let mut m = [0u8; 512];
    let e = &mut m[446..462];
    e[4] = 0xEE;
    put32(e, 8, 1);
    put32(e, 12, (sectors - 1).min(u64::from(u32::MAX)) as u32);
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

/// A whole GPT disk of `bytes` bytes with `ss`-byte sectors and the given partitions (inclusive
/// sector ranges); the data area is left zero.
pub fn gpt_image(ss: usize, bytes: usize, parts: &[(u64, u64)]) -> Vec<u8> {
    let l = GptLayout::new(ss, bytes);
    let mut img = vec![0u8; bytes];
    img[..512].copy_from_slice(&protective_mbr(l.sectors));
    let array = gpt_array(parts);
    let crc = crc32(&array);
    let primary = gpt_header(&l, 1, l.last(), 2, crc);
    let backup = gpt_header(&l, l.last(), 1, l.backup_array(), crc);
    img[l.at(1)..][..ss].copy_from_slice(&primary);
    img[l.at(2)..][..array.len()].copy_from_slice(&array);
    img[l.at(l.backup_array())..][..array.len()].copy_from_slice(&array);
    img[l.at(l.last())..][..ss].copy_from_slice(&backup);
    img
}

/// A classic MBR disk: entries (type, first sector, sector count) of 512-byte sectors.
pub fn mbr_image(bytes: usize, parts: &[(u8, u32, u32)]) -> Vec<u8> {
    let mut img = vec![0u8; bytes];
    for (i, &(kind, first, count)) in parts.iter().enumerate() {
        let e = &mut img[446 + 16 * i..][..16];
        e[4] = kind;
        put32(e, 8, first);
        put32(e, 12, count);
    }
    img[510] = 0x55;
    img[511] = 0xAA;
    img
}

/// Read the table of a disk of `blocks` 4 KiB blocks with `sector_size`-byte sectors through
/// `read(offset, out)`, which fills `out` from byte `offset` of the disk and says whether it could.
/// `buf` is the scratch space (its length is the `Partitioner`'s window).
pub fn read_table(
    sector_size: u16,
    blocks: u64,
    buf: &mut [u8],
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<PartitionTable, PartitionError> {
    let (mut p, mut step) = Partitioner::new(sector_size, blocks, buf.len());
    while let Step::Read { offset, len } = step {
        step = match buf.get_mut(..len) {
            Some(out) => {
                if read(offset, out) {
                    p.feed(out)
                } else {
                    p.read_failed()
                }
            }
            None => p.read_failed(),
        };
    }
    p.table().cloned()
}
