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
//! with them at higher priorities. Between the FAT backend and the blk client sits a write-back
//! cache of [`CACHED_BLOCKS`] blocks with [`READ_AHEAD`]-block read-ahead ([`BlkDisk`]), written
//! back whenever the file system syncs (`FILE_SYNC`, a close, `DEINITIALISE`).
//!
//! **Host board only for now**: the FAT backend allocates (no_std + `alloc`), and lions-os offers
//! no global allocator for seL4 PDs yet.
#![cfg_attr(not(target_os = "linux"), no_std, no_main)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "fs_fat runs on the host board only for now: its FAT backend allocates and lions-os has no \
     global allocator for seL4 PDs yet"
);

use lions_blk::{BLK_TRANSFER_SIZE, BlkClient, BlkClientConfig, BlockingBlk, ClientError};
use lions_fs::{BlockDevice, BlockError, FatFs, FsServer, FsServerConfig};

lions_os::config!(static FS: FsServerConfig = ".fs_server_config");
lions_os::config!(static BLK: BlkClientConfig = ".blk_client_config");

/// End the PD as one that could not start (the launcher reports it and does not restart it).
fn fail(what: impl core::fmt::Display) -> ! {
    eprintln!("{}: cannot start: {what}", lions_os::pd_name());
    std::process::exit(i32::from(lions_os::host::EXIT_STARTUP));
}

/// Blocks the cache of [`BlkDisk`] keeps.
const CACHED_BLOCKS: usize = 16;

/// Blocks one cache miss reads (the block asked for and those after it).
const READ_AHEAD: u64 = 8;

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

/// The blk partition as the FAT backend's block device: 4 KiB blocks (sDDF transfer units), as
/// many as the virtualiser published, with a small write-back cache of single blocks.
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
/// - `flush` (FAT sync, close, unmount) writes every dirty block back, then sends a blk FLUSH.
///
/// So metadata reaches the disk at the latest when the file system syncs, as with any cache.
struct BlkDisk {
    blk: BlockingBlk<'static>,
    blocks: u64,
    slots: Vec<Slot>,
    tick: u64,
    /// Where read-ahead lands before it is shared out to slots.
    ahead: Vec<u8>,
}

/// The block-device error of a blk client error.
fn block_error(e: ClientError) -> BlockError {
    match e {
        ClientError::NotReady => BlockError::NotReady,
        ClientError::Range => BlockError::OutOfRange,
        _ => BlockError::Io,
    }
}

impl BlkDisk {
    fn new(blk: BlockingBlk<'static>, blocks: u64) -> Self {
        Self {
            blk,
            blocks,
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
            self.blk.write_blocks(lba, &s.data).map_err(block_error)?;
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
                data: vec![0; BLK_TRANSFER_SIZE].into_boxed_slice(),
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
        let mut n = 1;
        while n < READ_AHEAD && lba + n < self.blocks && self.find(lba + n).is_none() {
            n += 1;
        }
        let mut ahead = core::mem::take(&mut self.ahead);
        // `n <= READ_AHEAD`: a few blocks.
        ahead.resize(usize::try_from(n).unwrap_or(1) * BLK_TRANSFER_SIZE, 0);
        let mut result = self.blk.read_blocks(lba, &mut ahead).map_err(block_error);
        if result.is_ok() {
            for (k, block) in ahead.chunks_exact(BLK_TRANSFER_SIZE).enumerate().rev() {
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
            Some((i, usize::try_from(at).ok()? * BLK_TRANSFER_SIZE))
        })
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
        self.blk.read_blocks(lba, buf).map_err(block_error)?;
        for (i, at) in self.overlapping(lba, n) {
            buf[at..at + BLK_TRANSFER_SIZE].copy_from_slice(&self.slots[i].data);
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
        self.blk.write_blocks(lba, buf).map_err(block_error)?;
        let hits: Vec<(usize, usize)> = self.overlapping(lba, n).collect();
        for (i, at) in hits {
            let s = &mut self.slots[i];
            s.data.copy_from_slice(&buf[at..at + BLK_TRANSFER_SIZE]);
            s.dirty = false;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        for i in 0..self.slots.len() {
            self.write_back(i)?;
        }
        self.blk.flush().map_err(block_error)
    }
}

fn init() -> FsServer<'static, FatFs> {
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
    let disk = BlkDisk::new(blk, info.capacity);
    // SAFETY: the command and completion queues and the share region are mapped read-write at
    // the config's vaddrs before `init` and for the PD's life, shared only with the one client;
    // this is the only server handle of them.
    unsafe { FsServer::from_config(fs, FatFs::new(disk)) }.unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
