// SPDX-License-Identifier: BSD-2-Clause
//! The block device a file-system backend sits on: whole blocks by logical block address. The
//! lions-blk client provides one over sDDF blk queues; [`fat::RamDisk`](crate::fat::RamDisk) is
//! one in memory.

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockError {
    /// The device reported a failure (sDDF `SEEK_ERROR`, an I/O error).
    Io,
    /// The blocks lie (partly) past the end of the device, or the buffer is not whole blocks.
    OutOfRange,
    /// The device is not ready (sDDF storage info not `ready`).
    NotReady,
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Io => "block device I/O error",
            Self::OutOfRange => "block range outside the device",
            Self::NotReady => "block device not ready",
        })
    }
}

impl core::error::Error for BlockError {}

/// A device of `block_count` blocks of `block_size` bytes. Every transfer is whole blocks: the
/// buffer's length is a multiple of [`block_size`](Self::block_size) (else
/// [`BlockError::OutOfRange`]). A call returns when the transfer is done (a blocking client).
pub trait BlockDevice {
    /// Bytes per block: a power of two, at least 512.
    fn block_size(&self) -> usize;
    /// Blocks on the device.
    fn block_count(&self) -> u64;
    /// Read `buf.len() / block_size` blocks from `lba`.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `buf.len() / block_size` blocks at `lba`.
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Make every completed write durable (sDDF `FLUSH`).
    fn flush(&mut self) -> Result<(), BlockError>;
    /// A hint: `blocks` blocks from `lba` will be read soon. A device that can fetch them in the
    /// background (the queued blk client) starts now; the default does nothing.
    fn prefetch(&mut self, lba: u64, blocks: u64) {
        let _ = (lba, blocks);
    }
    /// The device notified (its requests may have finished): take what it finished without
    /// waiting. The default does nothing.
    fn poll(&mut self) {}
}

/// Check a transfer of `len` bytes at `lba` against a device's geometry; returns the block count.
pub fn check_transfer(dev: &impl BlockDevice, lba: u64, len: usize) -> Result<u64, BlockError> {
    let bs = dev.block_size();
    if bs == 0 || !len.is_multiple_of(bs) {
        return Err(BlockError::OutOfRange);
    }
    let n = (len / bs) as u64;
    match lba.checked_add(n) {
        Some(end) if end <= dev.block_count() => Ok(n),
        _ => Err(BlockError::OutOfRange),
    }
}
