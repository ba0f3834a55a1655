// SPDX-License-Identifier: BSD-2-Clause
//! The disk under the FAT library: [`BlockIo`] turns a [`BlockDevice`] into the byte-addressed
//! `Read`/`Write`/`Seek` stream `lamfat` wants, and `SharedDisk` is how the mounted volume holds
//! it while [`FatFs`](super::FatFs) keeps the device to take back after an unmount.

use crate::block::{BlockDevice, BlockError};
use crate::cache::{BlockCache, CacheConfig};
use alloc::boxed::Box;
use alloc::rc::Rc;
use core::cell::RefCell;
use lamfat::{IoBase, Read, Seek, SeekFrom, Write};

/// Why the disk adaptor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// The block device failed.
    Block(BlockError),
    /// A read ended early.
    UnexpectedEof,
    /// A write made no progress.
    WriteZero,
    /// A seek before the start or past the end of the device.
    Seek,
}

impl lamfat::IoError for DiskError {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        Self::UnexpectedEof
    }
    fn new_write_zero_error() -> Self {
        Self::WriteZero
    }
}

impl From<BlockError> for DiskError {
    fn from(e: BlockError) -> Self {
        Self::Block(e)
    }
}

/// A block device as the byte stream the FAT library reads: arbitrary offsets and lengths,
/// through the one [`BlockCache`] (whole blocks at a block boundary go to the cache as runs;
/// the rest as parts of one block).
pub struct BlockIo {
    pub(super) cache: BlockCache,
    block: usize,
    size: u64,
    pos: u64,
}

impl BlockIo {
    /// The stream over `dev` with a cache of [`CacheConfig::default`].
    pub fn new(dev: Box<dyn BlockDevice>) -> Self {
        Self::with_cache(dev, CacheConfig::default())
    }

    /// The stream over `dev` with a cache of `cfg`.
    pub fn with_cache(dev: Box<dyn BlockDevice>, cfg: CacheConfig) -> Self {
        let cache = BlockCache::new(dev, cfg);
        let block = cache.block_size();
        let size = cache.block_count().saturating_mul(block as u64);
        Self {
            cache,
            block,
            size,
            pos: 0,
        }
    }

    /// The device back (after a [`flush`](Write::flush), or cached writes are lost).
    pub fn into_device(self) -> Box<dyn BlockDevice> {
        self.cache.into_device()
    }

    /// The cache.
    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// Where the current position is: block, offset in it, and whole blocks available from it
    /// for a transfer of `len` bytes (0 unless the position is aligned).
    fn locate(&self, len: usize) -> (u64, usize, u64) {
        let bs = self.block as u64;
        let (lba, off) = (self.pos / bs, self.pos % bs);
        let whole = if off == 0 {
            (len as u64 / bs).min((self.size - self.pos) / bs)
        } else {
            0
        };
        // `off < block`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        (lba, off as usize, whole)
    }

    /// Bytes of a partial transfer of `len` at the current position (inside one block).
    fn part(&self, off: usize, len: usize) -> usize {
        let left = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        len.min(self.block - off).min(left)
    }
}

impl IoBase for BlockIo {
    type Error = DiskError;
}

impl Read for BlockIo {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DiskError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (lba, off, whole) = self.locate(buf.len());
        let n = if whole > 0 {
            // `whole * block <= buf.len()`.
            #[allow(clippy::cast_possible_truncation)]
            let n = whole as usize * self.block;
            self.cache.read(lba, &mut buf[..n])?;
            n
        } else {
            let n = self.part(off, buf.len());
            self.cache.read_part(lba, off, &mut buf[..n])?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for BlockIo {
    fn write(&mut self, buf: &[u8]) -> Result<usize, DiskError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (lba, off, whole) = self.locate(buf.len());
        let n = if whole > 0 {
            #[allow(clippy::cast_possible_truncation)]
            let n = whole as usize * self.block;
            self.cache.write(lba, &buf[..n])?;
            n
        } else {
            let n = self.part(off, buf.len());
            self.cache.write_part(lba, off, &buf[..n])?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.cache.flush()?;
        Ok(())
    }
}

impl Seek for BlockIo {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, DiskError> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.size => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(DiskError::Seek),
        }
    }
}

/// The disk as the volume holds it: shared with [`FatFs`], which takes the device back after an
/// unmount. Only the volume uses it while mounted, one call at a time.
pub(super) struct SharedDisk(pub(super) Rc<RefCell<BlockIo>>);

impl IoBase for SharedDisk {
    type Error = DiskError;
}

impl Read for SharedDisk {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DiskError> {
        self.0.borrow_mut().read(buf)
    }
}

impl Write for SharedDisk {
    fn write(&mut self, buf: &[u8]) -> Result<usize, DiskError> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.0.borrow_mut().flush()
    }
}

impl Seek for SharedDisk {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, DiskError> {
        self.0.borrow_mut().seek(pos)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fat::RamDisk;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn block_io_reads_and_writes_any_span() {
        let disk = RamDisk::new(512, 16);
        let mut io = BlockIo::new(Box::new(disk.clone()));
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        io.seek(SeekFrom::Start(100)).unwrap();
        io.write_all(&data).unwrap();
        io.flush().unwrap();
        let img = disk.image();
        assert_eq!(&img[100..3100], &data[..]);
        assert!(img[..100].iter().all(|&b| b == 0) && img[3100..].iter().all(|&b| b == 0));
        let mut back = vec![0u8; 3000];
        io.seek(SeekFrom::Start(100)).unwrap();
        io.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
        // Aligned whole blocks bypass the cache but see its dirty contents.
        io.seek(SeekFrom::Start(1024 + 7)).unwrap();
        io.write_all(b"dirty").unwrap();
        io.seek(SeekFrom::Start(1024)).unwrap();
        let mut blocks = vec![0u8; 1024];
        io.read_exact(&mut blocks).unwrap();
        assert_eq!(&blocks[7..12], b"dirty");
        // And an aligned write over a dirty cached block is not undone by a later write-back.
        io.seek(SeekFrom::Start(1024)).unwrap();
        io.write_all(&[9u8; 1024]).unwrap();
        io.flush().unwrap();
        assert!(disk.image()[1024..2048].iter().all(|&b| b == 9));
        assert_eq!(io.seek(SeekFrom::End(0)).unwrap(), 8192);
        assert_eq!(io.seek(SeekFrom::End(1)), Err(DiskError::Seek));
        assert_eq!(io.read(&mut back).unwrap(), 0, "end of device");
        assert_eq!(io.write(&back).unwrap(), 0, "end of device");
    }

    #[test]
    fn device_errors_surface() {
        let disk = RamDisk::new(4096, 4);
        let mut io = BlockIo::new(Box::new(disk.clone()));
        disk.set_failing(true);
        let mut b = [0u8; 10];
        assert_eq!(io.read(&mut b), Err(DiskError::Block(BlockError::Io)));
        let mut d = disk.clone();
        assert_eq!(
            d.read_blocks(4, &mut [0u8; 4096]),
            Err(BlockError::OutOfRange)
        );
        assert_eq!(
            d.read_blocks(0, &mut [0u8; 100]),
            Err(BlockError::OutOfRange)
        );
    }
}
