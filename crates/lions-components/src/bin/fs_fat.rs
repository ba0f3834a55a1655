// SPDX-License-Identifier: BSD-2-Clause
//! `fs_fat`: the FAT file-system server (LionsOS's `fat` component, sdfgen's
//! `LionsOs.FileSystem.Fat`): an [`FsServer`] for one client over a [`FatFs`] volume on one blk
//! partition.
//!
//! Config sections, as sdfgen writes them for the FAT server PD: `.fs_server_config` (the
//! connection to the file-system client: command and completion queues, share region, channel)
//! and `.blk_client_config` (its connection to the blk virtualiser and its blk data region).
//! sdfgen also maps four worker-thread stacks for LionsOS's cothreads; this server runs every
//! command to completion in its event handler and does not use them.
//!
//! At start it waits until the blk virtualiser has published its partition (a partition of
//! capacity 0, or none, ends the PD as one that could not start); the volume is mounted by the
//! client's `INITIALISE`. Block I/O is blocking ([`BlockingBlk`]: the whole blk data region is
//! the bounce buffer, each request waited for by polling its response queue), so the server
//! works while the virtualiser and the driver run concurrently with it: the host board, or seL4
//! with them at higher priorities. Between the FAT backend and the blk client ([`BlkDisk`]) sits
//! a write-back cache of [`CACHED_BLOCKS`] blocks with [`READ_AHEAD`]-block read-ahead
//! ([`Cached`]), written back whenever the file system syncs (`FILE_SYNC`, a close,
//! `DEINITIALISE`).
//!
//! The FAT backend allocates (no_std + `alloc`). On the host board that is the process's heap; on
//! seL4 (`target_os = "none"`) it is `heap::HEAP_SIZE` (2 MiB) of this PD's `.bss` under a
//! `linked_list_allocator` heap, set up first thing in `init` (lions-os itself has no
//! allocator).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::{boxed::Box, vec, vec::Vec};
use lions_blk::{BLK_TRANSFER_SIZE, BlkClient, BlkClientConfig, BlockingBlk, ClientError};
use lions_fs::{BlockDevice, BlockError, FatFs, FsServer, FsServerConfig};

lions_os::config!(static FS: FsServerConfig = ".fs_server_config");
lions_os::config!(static BLK: BlkClientConfig = ".blk_client_config");

use lions_os::startup_failed as fail;

/// The worker-thread stack addresses sdfgen has the Microkit tool write into the FAT server PD
/// (`setvar_vaddr`, for LionsOS's cothreads). This server does not use them, but the tool refuses
/// an image without the symbols; they live in `.data.microkit`, which the linker script keeps.
#[cfg(target_os = "none")]
#[allow(non_upper_case_globals)]
mod worker_stacks {
    /// Worker stack 1's vaddr (patched by the Microkit tool).
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_one: u64 = 0;
    /// Worker stack 2's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_two: u64 = 0;
    /// Worker stack 3's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_three: u64 = 0;
    /// Worker stack 4's vaddr.
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".data.microkit")]
    static worker_thread_stack_four: u64 = 0;
}

/// The seL4 PD's heap: the FAT backend's only source of memory there.
#[cfg(target_os = "none")]
mod heap {
    use core::cell::UnsafeCell;
    use linked_list_allocator::LockedHeap;

    /// Bytes of heap: 2 MiB of `.bss`. What the server allocates is small and bounded: the
    /// block cache (`CACHED_BLOCKS` × 4 KiB = 64 KiB) and its read-ahead buffer (32 KiB), the FAT
    /// library's per-volume state and one cluster-sized buffer per open file or directory
    /// (clusters up to 64 KiB), and the open-file tables. 2 MiB leaves room for a few dozen
    /// open files of the largest clusters, with slack for fragmentation.
    pub const HEAP_SIZE: usize = 2 * 1024 * 1024;

    /// The heap's memory, 16-byte aligned (the most any allocation here asks for).
    #[repr(C, align(16))]
    struct Memory(UnsafeCell<[u8; HEAP_SIZE]>);

    // SAFETY: the bytes are only ever reached through the allocator, which `init` hands them to
    // once; the PD is single-threaded.
    unsafe impl Sync for Memory {}

    static MEMORY: Memory = Memory(UnsafeCell::new([0; HEAP_SIZE]));

    #[global_allocator]
    static ALLOCATOR: LockedHeap = LockedHeap::empty();

    /// Give the heap its memory. Call once, before anything allocates (until then every
    /// allocation fails).
    pub fn init() {
        // SAFETY: `MEMORY` is a static of `HEAP_SIZE` bytes, valid for the program's life, used by
        // nothing but this heap; `init` is called once, first thing in the PD's `init`.
        unsafe {
            ALLOCATOR
                .lock()
                .init(MEMORY.0.get().cast::<u8>(), HEAP_SIZE);
        }
    }
}

/// Blocks the cache ([`Cached`]) keeps.
const CACHED_BLOCKS: usize = 16;

/// Blocks one cache miss reads (the block asked for and those after it).
const READ_AHEAD: u64 = 8;

/// The blk partition as a block device: 4 KiB blocks (sDDF transfer units), as many as the
/// virtualiser published; every call is one blocking blk request (or a few, for a transfer
/// larger than the blk data region).
struct BlkDisk {
    blk: BlockingBlk<'static>,
    blocks: u64,
}

/// The block-device error of a blk client error.
fn block_error(e: ClientError) -> BlockError {
    match e {
        ClientError::NotReady => BlockError::NotReady,
        ClientError::Range => BlockError::OutOfRange,
        _ => BlockError::Io,
    }
}

impl BlockDevice for BlkDisk {
    fn block_size(&self) -> usize {
        BLK_TRANSFER_SIZE
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        lions_fs::block::check_transfer(self, lba, buf.len())?;
        self.blk.read_blocks(lba, buf).map_err(block_error)
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        lions_fs::block::check_transfer(self, lba, buf.len())?;
        self.blk.write_blocks(lba, buf).map_err(block_error)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.blk.flush().map_err(block_error)
    }
}

/// One cached block.
struct Slot {
    /// The block held (`None`: nothing valid).
    lba: Option<u64>,
    /// When it was last used (for least-recently-used eviction).
    used: u64,
    /// Changed here and not yet written to the device.
    dirty: bool,
    data: Box<[u8]>,
}

/// A small write-back cache of single blocks in front of `D`.
///
/// Every blk request is a round trip through the virtualiser and the driver, and the FAT
/// library's own one-block buffer would otherwise bounce between the two FAT copies and the
/// directory on every cluster it allocates (about ten requests per 4 KiB appended). So:
///
/// - a one-block read is served from (and kept in) the cache; a miss reads up to
///   [`READ_AHEAD`] blocks in one request (up to the next cached block or the end), as reading a
///   file asks for its blocks in order; a longer read goes to the device, with cached blocks in
///   its range copied over it (they are at least as new);
/// - a one-block write to a cached block only changes the cache (dirty); any other write goes to
///   the device at once, and cached copies in its range take its bytes and become clean;
/// - the least recently used block makes room, written back first if dirty;
/// - `flush` (FAT sync, close, unmount) writes every dirty block back, then flushes the device.
///
/// So metadata reaches the disk at the latest when the file system syncs, as with any cache.
struct Cached<D> {
    dev: D,
    /// Bytes per block (the device's).
    bs: usize,
    slots: Vec<Slot>,
    tick: u64,
    /// Where read-ahead lands before it is shared out to slots.
    ahead: Vec<u8>,
}

impl<D: BlockDevice> Cached<D> {
    fn new(dev: D) -> Self {
        Self {
            bs: dev.block_size(),
            dev,
            slots: Vec::with_capacity(CACHED_BLOCKS),
            tick: 0,
            ahead: Vec::new(),
        }
    }

    fn find(&self, lba: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.lba == Some(lba))
    }

    fn touch(&mut self, i: usize) {
        self.tick += 1;
        self.slots[i].used = self.tick;
    }

    fn write_back(&mut self, i: usize) -> Result<(), BlockError> {
        let s = &mut self.slots[i];
        if let (true, Some(lba)) = (s.dirty, s.lba) {
            self.dev.write_blocks(lba, &s.data)?;
        }
        s.dirty = false;
        Ok(())
    }

    /// An empty slot: a new one, or the least recently used one written back.
    fn victim(&mut self) -> Result<usize, BlockError> {
        if self.slots.len() < CACHED_BLOCKS {
            self.slots.push(Slot {
                lba: None,
                used: 0,
                dirty: false,
                data: vec![0; self.bs].into_boxed_slice(),
            });
            return Ok(self.slots.len() - 1);
        }
        let i = (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].used)
            .unwrap_or(0);
        self.write_back(i)?;
        self.slots[i].lba = None;
        Ok(i)
    }

    /// Read `lba` (not cached) and the blocks after it, up to [`READ_AHEAD`] in all and stopping
    /// at a cached block or the end, into slots; `lba` is used last, so it is the most recent.
    fn read_ahead(&mut self, lba: u64) -> Result<(), BlockError> {
        let blocks = self.dev.block_count();
        let mut n = 1;
        while n < READ_AHEAD && lba + n < blocks && self.find(lba + n).is_none() {
            n += 1;
        }
        let mut ahead = core::mem::take(&mut self.ahead);
        // `n <= READ_AHEAD`: a few blocks.
        ahead.resize(usize::try_from(n).unwrap_or(1) * self.bs, 0);
        let mut result = self.dev.read_blocks(lba, &mut ahead);
        if result.is_ok() {
            for (k, block) in ahead.chunks_exact(self.bs).enumerate().rev() {
                match self.victim() {
                    Ok(i) => {
                        self.slots[i].data.copy_from_slice(block);
                        self.slots[i].lba = Some(lba + k as u64);
                        self.touch(i);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        self.ahead = ahead;
        result
    }

    /// Cached blocks inside `lba..lba + n`, with their byte offset from `lba`.
    fn overlapping(&self, lba: u64, n: u64) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
            let at = s.lba?.checked_sub(lba).filter(|&d| d < n)?;
            Some((i, usize::try_from(at).ok()? * self.bs))
        })
    }
}

impl<D: BlockDevice> BlockDevice for Cached<D> {
    fn block_size(&self) -> usize {
        self.bs
    }

    fn block_count(&self) -> u64 {
        self.dev.block_count()
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let n = lions_fs::block::check_transfer(self, lba, buf.len())?;
        if n == 1 {
            if self.find(lba).is_none() {
                self.read_ahead(lba)?;
            }
            let i = self.find(lba).ok_or(BlockError::Io)?;
            self.touch(i);
            buf.copy_from_slice(&self.slots[i].data);
            return Ok(());
        }
        self.dev.read_blocks(lba, buf)?;
        for (i, at) in self.overlapping(lba, n) {
            buf[at..at + self.bs].copy_from_slice(&self.slots[i].data);
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let n = lions_fs::block::check_transfer(self, lba, buf.len())?;
        if let (1, Some(i)) = (n, self.find(lba)) {
            self.slots[i].data.copy_from_slice(buf);
            self.slots[i].dirty = true;
            self.touch(i);
            return Ok(());
        }
        self.dev.write_blocks(lba, buf)?;
        let hits: Vec<(usize, usize)> = self.overlapping(lba, n).collect();
        for (i, at) in hits {
            let bs = self.bs;
            let s = &mut self.slots[i];
            s.data.copy_from_slice(&buf[at..at + bs]);
            s.dirty = false;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        for i in 0..self.slots.len() {
            self.write_back(i)?;
        }
        self.dev.flush()
    }
}

fn init() -> FsServer<'static, FatFs> {
    #[cfg(target_os = "none")]
    heap::init();
    let fs = FS.get().unwrap_or_else(|e| fail(e));
    let blk = BLK.get().unwrap_or_else(|e| fail(e));
    // SAFETY: the system description maps the blk connection (storage info readable, queues and
    // data read-write) at the config's vaddrs before `init` runs and for the PD's whole life,
    // shared only with the blk virtualiser (and the data region with the device); this is the
    // only requester handle of it in this PD.
    let client = unsafe { BlkClient::new(blk) }.unwrap_or_else(|e| fail(e));
    let mut blk = BlockingBlk::new(client);
    let info = blk.wait_ready();
    if info.capacity == 0 {
        fail("the blk virtualiser has no partition for this server");
    }
    let disk = Cached::new(BlkDisk {
        blk,
        blocks: info.capacity,
    });
    // SAFETY: the command and completion queues and the share region are mapped read-write at
    // the config's vaddrs before `init` and for the PD's life, shared only with the one client;
    // this is the only server handle of them.
    unsafe { FsServer::from_config(fs, FatFs::new(disk)) }.unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Small test numbers.
mod tests {
    use super::*;
    use lions_fs::RamDisk;

    const BS: usize = 512;
    const BLOCKS: u64 = 64;

    /// xorshift64: a fixed sequence of operations, no dependency.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    fn disk_bytes(d: &RamDisk) -> Vec<u8> {
        d.image()
    }

    /// Random reads, writes (one block and several) and flushes through the cache agree with a
    /// plain copy of the disk at every read, and the device equals it after each flush.
    #[test]
    fn the_cache_is_invisible_except_for_timing() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut model = vec![0u8; BS * BLOCKS as usize];
        let mut cached = Cached::new(dev.clone());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000u32 {
            let lba = next(&mut x) % BLOCKS;
            let n = if next(&mut x).is_multiple_of(4) {
                1 + next(&mut x) % 12
            } else {
                1
            }
            .min(BLOCKS - lba);
            let range = lba as usize * BS..(lba + n) as usize * BS;
            match next(&mut x) % 16 {
                0 => {
                    cached.flush().unwrap();
                    assert_eq!(disk_bytes(&dev), model, "step {step}: flushed");
                }
                1..=7 => {
                    let fill = (next(&mut x) & 0xff) as u8;
                    let data: Vec<u8> = (0..range.len()).map(|i| fill ^ i as u8).collect();
                    cached.write_blocks(lba, &data).unwrap();
                    model[range].copy_from_slice(&data);
                }
                _ => {
                    let mut buf = vec![0u8; range.len()];
                    cached.read_blocks(lba, &mut buf).unwrap();
                    assert!(buf == model[range], "step {step}: read {n} at {lba}");
                }
            }
        }
        assert!(cached.slots.len() <= CACHED_BLOCKS);
        assert_eq!(
            cached.read_blocks(BLOCKS, &mut [0u8; BS]),
            Err(BlockError::OutOfRange)
        );
        assert_eq!(
            cached.write_blocks(0, &[0u8; 100]),
            Err(BlockError::OutOfRange)
        );
    }

    #[test]
    fn metadata_rewrites_stay_in_the_cache_until_a_flush() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut cached = Cached::new(dev.clone());
        let mut block = [0u8; BS];
        // Read-modify-write of two "FAT" blocks, alternately, as the FAT library does.
        for round in 0..100u8 {
            for lba in [1, 9] {
                cached.read_blocks(lba, &mut block).unwrap();
                block[usize::from(round)] = round;
                cached.write_blocks(lba, &block).unwrap();
            }
        }
        let (reads, writes, flushes) = dev.counts();
        assert_eq!(
            (reads, writes, flushes),
            (2, 0, 0),
            "one read-ahead each, no write yet"
        );
        assert_eq!(disk_bytes(&dev)[BS + 99], 0, "not written back yet");
        cached.flush().unwrap();
        assert_eq!(
            dev.counts(),
            (2, 2, 1),
            "each dirty block once, then the device flush"
        );
        assert_eq!(disk_bytes(&dev)[BS + 99], 99);
        assert_eq!(disk_bytes(&dev)[9 * BS + 99], 99);
    }

    #[test]
    fn sequential_reads_come_in_read_ahead_runs() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut cached = Cached::new(dev.clone());
        let mut block = [0u8; BS];
        for lba in 0..BLOCKS {
            cached.read_blocks(lba, &mut block).unwrap();
        }
        assert_eq!(dev.counts().0, BLOCKS / READ_AHEAD);
        // A failing device: the error reaches the caller and nothing stale is served after.
        dev.set_failing(true);
        cached.slots.clear();
        assert_eq!(cached.read_blocks(3, &mut block), Err(BlockError::Io));
        dev.set_failing(false);
        cached.read_blocks(3, &mut block).unwrap();
    }
}
