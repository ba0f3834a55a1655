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
//! with them at higher priorities.
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

/// The blk partition as the FAT backend's block device: 4 KiB blocks (sDDF transfer units), as
/// many as the virtualiser published.
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
    let disk = BlkDisk {
        blk,
        blocks: info.capacity,
    };
    // SAFETY: the command and completion queues and the share region are mapped read-write at
    // the config's vaddrs before `init` and for the PD's life, shared only with the one client;
    // this is the only server handle of them.
    unsafe { FsServer::from_config(fs, FatFs::new(disk)) }.unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
