// SPDX-License-Identifier: BSD-2-Clause
//! [`RamDisk`]: a [`BlockDevice`] in memory, for tests and RAM disks, with failure injection and
//! operation counts.

use crate::block::{BlockDevice, BlockError};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Shared state of a [`RamDisk`].
struct RamState {
    data: Vec<u8>,
    block: usize,
    fail: bool,
    reads: u64,
    writes: u64,
    flushes: u64,
}

/// A block device in memory (tests, RAM disks). Clones share the same blocks, so a test keeps
/// one to look at the image while the backend owns another; [`set_failing`](Self::set_failing)
/// makes every operation fail.
#[derive(Clone)]
pub struct RamDisk(Rc<RefCell<RamState>>);

impl RamDisk {
    /// `blocks` zeroed blocks of `block_size` bytes.
    pub fn new(block_size: usize, blocks: u64) -> Self {
        let len = usize::try_from(blocks)
            .ok()
            .and_then(|b| b.checked_mul(block_size))
            .unwrap_or(0);
        Self::from_image(vec![0; len], block_size)
    }

    /// A disk holding `image` (its length rounded down to whole blocks).
    pub fn from_image(mut image: Vec<u8>, block_size: usize) -> Self {
        let block = block_size.max(1);
        image.truncate(image.len() / block * block);
        Self(Rc::new(RefCell::new(RamState {
            data: image,
            block,
            fail: false,
            reads: 0,
            writes: 0,
            flushes: 0,
        })))
    }

    /// A copy of the image.
    pub fn image(&self) -> Vec<u8> {
        self.0.borrow().data.clone()
    }

    /// Make every operation fail with [`BlockError::Io`] (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.0.borrow_mut().fail = fail;
    }

    /// Operations so far: `(reads, writes, flushes)`.
    pub fn counts(&self) -> (u64, u64, u64) {
        let s = self.0.borrow();
        (s.reads, s.writes, s.flushes)
    }

    fn range(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        crate::block::check_transfer(self, lba, len)?;
        let block = self.0.borrow().block;
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(block))
            .ok_or(BlockError::OutOfRange)?;
        Ok(start..start + len)
    }
}

impl BlockDevice for RamDisk {
    fn block_size(&self) -> usize {
        self.0.borrow().block
    }

    fn block_count(&self) -> u64 {
        let s = self.0.borrow();
        (s.data.len() / s.block) as u64
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.reads += 1;
        buf.copy_from_slice(&s.data[r]);
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.writes += 1;
        s.data[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.flushes += 1;
        Ok(())
    }
}
