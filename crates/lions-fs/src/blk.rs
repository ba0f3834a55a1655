// SPDX-License-Identifier: BSD-2-Clause
//! The FAT server on a blk partition: what the `fs_fat` component is, as a library.
//!
//! - [`QueuedBlk`] (the lions-blk client with many requests in flight) is a [`BlockDevice`] of
//!   4 KiB blocks (sDDF transfer units), as many as the virtualiser published; prefetch hints
//!   become background READs, writes are posted, `flush` waits for them and FLUSHes.
//! - [`cache_config`] sizes the backend's one cache from the blk data region: read runs and
//!   write-back runs of an eighth of the region (at most 64 blocks), two runs prefetched ahead of a
//!   sequential reader, and four runs' worth of cached blocks (at least 64).
//! - [`fat_server`] builds the server from the two configs sdfgen writes for a FAT server PD,
//!   after waiting for the virtualiser to publish the partition.
//!
//! Waiting for the blk virtualiser happens inside a backend call (the FAT library's API is
//! synchronous) and is bounded: when the virtualiser stops answering (it faults a client that
//! broke its queue), the call fails with [`Status::Error`](crate::Status::Error) after the
//! client's patience instead of hanging the server.

use crate::block::{BlockDevice, BlockError};
use crate::cache::CacheConfig;
use crate::config::FsServerConfig;
use crate::fat::FatFs;
use crate::queue::QueueError;
use crate::server::FsServer;
use lions_blk::{BLK_TRANSFER_SIZE, BlkClient, BlkClientConfig, ClientError, QueuedBlk};
use lions_os::Mapped;

/// The block-device error of a blk client error.
fn block_error(e: ClientError) -> BlockError {
    match e {
        ClientError::NotReady => BlockError::NotReady,
        ClientError::Range => BlockError::OutOfRange,
        _ => BlockError::Io,
    }
}

impl BlockDevice for QueuedBlk<'_> {
    fn block_size(&self) -> usize {
        BLK_TRANSFER_SIZE
    }

    fn block_count(&self) -> u64 {
        self.info().map_or(0, |i| i.capacity)
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        crate::block::check_transfer(self, lba, buf.len())?;
        QueuedBlk::read_blocks(self, lba, buf).map_err(block_error)
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        crate::block::check_transfer(self, lba, buf.len())?;
        QueuedBlk::write_blocks(self, lba, buf).map_err(block_error)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        QueuedBlk::flush(self).map_err(block_error)
    }

    fn poll(&mut self) {
        // A queue error shows again at the next real request.
        let _ = QueuedBlk::poll(self);
    }

    fn prefetch(&mut self, lba: u64, blocks: u64) {
        // A hint: a queue error shows again at the next real request.
        let _ = QueuedBlk::prefetch(self, lba, blocks);
    }
}

/// The cache for a blk client whose data region holds `data_blocks` 4 KiB blocks (see the
/// module docs).
pub fn cache_config(data_blocks: usize) -> CacheConfig {
    let run = (data_blocks / 8).clamp(1, 64) as u64;
    CacheConfig {
        blocks: usize::try_from(run * 4).unwrap_or(64).max(64),
        read_ahead: run,
        prefetch_runs: 2,
        write_run: run,
    }
}

/// Why [`fat_server`] could not build the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FatServerError {
    /// The FS connection (queues, share region, channel id).
    Fs(QueueError),
    /// The blk connection.
    Blk(QueueError),
    /// The blk virtualiser did not publish the partition (or stopped answering).
    Storage(ClientError),
    /// The virtualiser has no partition for this server (capacity 0).
    NoPartition,
}

impl core::fmt::Display for FatServerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fs(e) => write!(f, "fs connection: {e}"),
            Self::Blk(e) => write!(f, "blk connection: {e}"),
            Self::Storage(e) => write!(f, "blk storage: {e}"),
            Self::NoPartition => write!(f, "the blk virtualiser has no partition for this server"),
        }
    }
}

impl core::error::Error for FatServerError {}

/// The FAT server of `fs` on the blk client of `blk`: waits (bounded) until the virtualiser
/// published the partition, then builds [`FsServer`] over [`FatFs`] with a cache sized by
/// [`cache_config`]. The volume is mounted by the client's `INITIALISE`.
///
/// Both configs come as their tokens (see [`lions_os::mapped`]).
pub fn fat_server(
    fs: Mapped<'static, FsServerConfig>,
    blk: Mapped<'static, BlkClientConfig>,
) -> Result<FsServer<'static, FatFs>, FatServerError> {
    let client: BlkClient<'static> = BlkClient::new(blk).map_err(FatServerError::Blk)?;
    let data_blocks = client.data_len() / BLK_TRANSFER_SIZE;
    let mut dev = QueuedBlk::new(client);
    let info = dev.wait_ready().map_err(FatServerError::Storage)?;
    if info.capacity == 0 {
        return Err(FatServerError::NoPartition);
    }
    let backend = FatFs::with_cache(dev, cache_config(data_blocks));
    FsServer::from_config(fs, backend).map_err(FatServerError::Fs)
}
