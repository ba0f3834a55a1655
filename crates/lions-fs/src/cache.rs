// SPDX-License-Identifier: BSD-2-Clause
//! The block cache of the FAT backend ([`BlockCache`]): the one cache between the FAT library
//! and a [`BlockDevice`], write-back, least-recently-used, sized by [`CacheConfig`].
//!
//! ## Protocol with the device
//!
//! - **Reads**: a block found in the cache is copied out. A miss reads a *run* in one device
//!   call: the blocks asked for and the ones after them, up to [`CacheConfig::read_ahead`] (or
//!   the request's length if longer), stopping at the first cached block or the device's end.
//!   When a miss starts where the previous one ended (a sequential reader), the cache also calls
//!   [`BlockDevice::prefetch`] for the next [`CacheConfig::prefetch_runs`] runs beyond it, so a
//!   queued device (the blk client) fetches them while the reader copies.
//! - **Writes** of whole blocks only change the cache (the block becomes dirty; it is not read
//!   first). A partial write reads the block first (a miss as above).
//! - **Eviction**: the least recently used block makes room. If it is dirty, the whole run of
//!   contiguous dirty blocks around it (up to [`CacheConfig::write_run`] blocks) is written back
//!   in one device call and becomes clean.
//! - **Flush** writes every dirty block back, in ascending block order, contiguous ones in one
//!   call each, then flushes the device. The FAT backend flushes on `FILE_SYNC`, a close and
//!   `DEINITIALISE`, so metadata reaches the disk at the latest then, as with any cache.
//! - A failed device call changes nothing cached: a block read in error is not inserted, and a
//!   dirty block whose write-back failed stays dirty.

use crate::block::{BlockDevice, BlockError};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// How large a [`BlockCache`] is and how it moves blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Blocks held (at least 2 are used).
    pub blocks: usize,
    /// Blocks one miss reads (at least 1).
    pub read_ahead: u64,
    /// Runs of `read_ahead` blocks a sequential reader asks the device to prefetch beyond the
    /// one it reads (0: none).
    pub prefetch_runs: u64,
    /// Most blocks one write-back writes (at least 1).
    pub write_run: u64,
}

impl Default for CacheConfig {
    /// 64 blocks, runs of 8, no prefetch: small enough for any heap.
    fn default() -> Self {
        Self {
            blocks: 64,
            read_ahead: 8,
            prefetch_runs: 0,
            write_run: 8,
        }
    }
}

const NONE: u32 = u32::MAX;

/// What one cache slot holds.
#[derive(Debug, Clone, Copy)]
struct Meta {
    lba: u64,
    dirty: bool,
    /// Towards the most recently used (`NONE` at the head).
    prev: u32,
    /// Towards the least recently used (`NONE` at the tail).
    next: u32,
}

/// A write-back block cache in front of a device; see the module docs.
pub struct BlockCache {
    dev: Box<dyn BlockDevice>,
    bs: usize,
    count: u64,
    cfg: CacheConfig,
    data: Vec<u8>,
    meta: Vec<Meta>,
    map: BTreeMap<u64, u32>,
    /// Most recently used slot.
    head: u32,
    /// Least recently used slot.
    tail: u32,
    /// Where read runs land before they are shared out.
    ahead: Vec<u8>,
    /// Where write-back runs are gathered.
    run: Vec<u8>,
    /// The block after the last miss run (sequential detection).
    next_seq: u64,
    /// The end of what was asked to be prefetched.
    prefetched: u64,
}

impl BlockCache {
    /// A cache of `cfg` in front of `dev`.
    pub fn new(dev: Box<dyn BlockDevice>, cfg: CacheConfig) -> Self {
        let bs = dev.block_size().max(1);
        let cfg = CacheConfig {
            blocks: cfg.blocks.clamp(2, NONE as usize - 1),
            read_ahead: cfg.read_ahead.max(1),
            write_run: cfg.write_run.max(1),
            ..cfg
        };
        Self {
            count: dev.block_count(),
            dev,
            bs,
            cfg,
            data: Vec::new(),
            meta: Vec::new(),
            map: BTreeMap::new(),
            head: NONE,
            tail: NONE,
            ahead: Vec::new(),
            run: Vec::new(),
            next_seq: u64::MAX,
            prefetched: 0,
        }
    }

    /// The device notified: let it take what it finished ([`BlockDevice::poll`]).
    pub fn poll(&mut self) {
        self.dev.poll();
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.bs
    }

    /// Blocks on the device.
    pub fn block_count(&self) -> u64 {
        self.count
    }

    /// Blocks cached now.
    pub fn cached(&self) -> usize {
        self.map.len()
    }

    /// Dirty blocks cached now.
    pub fn dirty(&self) -> usize {
        self.meta.iter().filter(|m| m.dirty).count()
    }

    /// The device back: call [`flush`](Self::flush) first, or dirty blocks are lost.
    pub fn into_device(self) -> Box<dyn BlockDevice> {
        self.dev
    }

    fn bytes(&self, slot: u32) -> core::ops::Range<usize> {
        let at = slot as usize * self.bs;
        at..at + self.bs
    }

    fn unlink(&mut self, s: u32) {
        let Meta { prev, next, .. } = self.meta[s as usize];
        match prev {
            NONE => self.head = next,
            p => self.meta[p as usize].next = next,
        }
        match next {
            NONE => self.tail = prev,
            n => self.meta[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, s: u32) {
        let m = &mut self.meta[s as usize];
        m.prev = NONE;
        m.next = self.head;
        match self.head {
            NONE => self.tail = s,
            h => self.meta[h as usize].prev = s,
        }
        self.head = s;
    }

    fn touch(&mut self, s: u32) {
        if self.head != s {
            self.unlink(s);
            self.push_front(s);
        }
    }

    /// Write back the run of contiguous dirty blocks around slot `s`'s block.
    fn write_back(&mut self, s: u32) -> Result<(), BlockError> {
        let lba = self.meta[s as usize].lba;
        let dirty = |c: &Self, b: u64| c.map.get(&b).is_some_and(|&t| c.meta[t as usize].dirty);
        let (mut lo, mut hi) = (lba, lba);
        while hi - lo + 1 < self.cfg.write_run && lo > 0 && dirty(self, lo - 1) {
            lo -= 1;
        }
        while hi - lo + 1 < self.cfg.write_run && dirty(self, hi + 1) {
            hi += 1;
        }
        let mut run = core::mem::take(&mut self.run);
        run.clear();
        for b in lo..=hi {
            let t = self.map[&b];
            run.extend_from_slice(&self.data[self.bytes(t)]);
        }
        let r = self.dev.write_blocks(lo, &run);
        self.run = run;
        r?;
        for b in lo..=hi {
            let t = self.map[&b];
            self.meta[t as usize].dirty = false;
        }
        Ok(())
    }

    /// A slot for a new block: a fresh one, or the least recently used one (written back first
    /// if dirty), unlinked and unmapped.
    fn victim(&mut self) -> Result<u32, BlockError> {
        if self.meta.len() < self.cfg.blocks {
            let s = u32::try_from(self.meta.len()).map_err(|_| BlockError::Io)?;
            self.meta.push(Meta {
                lba: u64::MAX,
                dirty: false,
                prev: NONE,
                next: NONE,
            });
            self.data.resize(self.data.len() + self.bs, 0);
            return Ok(s);
        }
        let s = self.tail;
        if self.meta[s as usize].dirty {
            self.write_back(s)?;
        }
        self.unlink(s);
        let lba = self.meta[s as usize].lba;
        self.map.remove(&lba);
        Ok(s)
    }

    /// Cache `bytes` (one block) as block `lba`, dirty or clean; `lba` must not be cached.
    fn insert(&mut self, lba: u64, bytes: Option<&[u8]>, dirty: bool) -> Result<u32, BlockError> {
        let s = self.victim()?;
        if let Some(b) = bytes {
            let r = self.bytes(s);
            self.data[r].copy_from_slice(b);
        }
        let m = &mut self.meta[s as usize];
        m.lba = lba;
        m.dirty = dirty;
        self.map.insert(lba, s);
        self.push_front(s);
        Ok(s)
    }

    /// Read the miss run from `lba` (at least `want` blocks if free) into the cache.
    fn fill(&mut self, lba: u64, want: u64) -> Result<(), BlockError> {
        let limit = want
            .max(self.cfg.read_ahead)
            .min(self.cfg.blocks as u64 / 2)
            .max(1);
        let mut n = 1;
        while n < limit && lba + n < self.count && !self.map.contains_key(&(lba + n)) {
            n += 1;
        }
        let mut ahead = core::mem::take(&mut self.ahead);
        // `n <= blocks / 2`: a slice of the cache's own size.
        ahead.resize(usize::try_from(n).map_err(|_| BlockError::Io)? * self.bs, 0);
        let mut r = self.dev.read_blocks(lba, &mut ahead);
        if r.is_ok() {
            // Last block first, so the first one is the most recently used.
            for (k, block) in ahead.chunks_exact(self.bs).enumerate().rev() {
                if let Err(e) = self.insert(lba + k as u64, Some(block), false) {
                    r = Err(e);
                    break;
                }
            }
        }
        self.ahead = ahead;
        r?;
        if lba == self.next_seq && self.cfg.prefetch_runs > 0 {
            let ra = self.cfg.read_ahead;
            let end = (lba + n)
                .saturating_add(ra.saturating_mul(self.cfg.prefetch_runs))
                .min(self.count);
            let mut at = self.prefetched.max(lba + n);
            while at < end {
                self.dev.prefetch(at, ra.min(end - at));
                at += ra;
            }
            self.prefetched = self.prefetched.max(end);
        }
        self.next_seq = lba + n;
        Ok(())
    }

    /// The slot of block `lba`, read (with its run) on a miss; `want`: blocks the caller needs
    /// from `lba` on.
    fn slot(&mut self, lba: u64, want: u64) -> Result<u32, BlockError> {
        if let Some(&s) = self.map.get(&lba) {
            self.touch(s);
            return Ok(s);
        }
        self.fill(lba, want)?;
        let s = *self.map.get(&lba).ok_or(BlockError::Io)?;
        self.touch(s);
        Ok(s)
    }

    /// Check `lba..lba + len / bs` against the device; returns the block count.
    fn check(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        if !len.is_multiple_of(self.bs) {
            return Err(BlockError::OutOfRange);
        }
        let n = (len / self.bs) as u64;
        match lba.checked_add(n) {
            Some(end) if end <= self.count => Ok(n),
            _ => Err(BlockError::OutOfRange),
        }
    }

    /// Read whole blocks from `lba` into `buf`.
    pub fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let n = self.check(lba, buf.len())?;
        for (k, out) in buf.chunks_exact_mut(self.bs).enumerate() {
            let s = self.slot(lba + k as u64, n - k as u64)?;
            out.copy_from_slice(&self.data[self.bytes(s)]);
        }
        Ok(())
    }

    /// Write whole blocks from `lba` (into the cache; see the module docs).
    pub fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(lba, buf.len())?;
        for (k, block) in buf.chunks_exact(self.bs).enumerate() {
            let b = lba + k as u64;
            let s = match self.map.get(&b) {
                Some(&s) => {
                    self.touch(s);
                    s
                }
                None => self.insert(b, None, true)?,
            };
            let r = self.bytes(s);
            self.data[r].copy_from_slice(block);
            self.meta[s as usize].dirty = true;
        }
        Ok(())
    }

    /// Copy bytes `off..off + out.len()` of block `lba` into `out` (inside one block).
    pub fn read_part(&mut self, lba: u64, off: usize, out: &mut [u8]) -> Result<(), BlockError> {
        let end = off
            .checked_add(out.len())
            .filter(|&e| e <= self.bs && lba < self.count)
            .ok_or(BlockError::OutOfRange)?;
        let s = self.slot(lba, 1)?;
        let at = s as usize * self.bs;
        out.copy_from_slice(&self.data[at + off..at + end]);
        Ok(())
    }

    /// Change bytes `off..off + src.len()` of block `lba` (inside one block).
    pub fn write_part(&mut self, lba: u64, off: usize, src: &[u8]) -> Result<(), BlockError> {
        let end = off
            .checked_add(src.len())
            .filter(|&e| e <= self.bs && lba < self.count)
            .ok_or(BlockError::OutOfRange)?;
        let s = self.slot(lba, 1)?;
        let at = s as usize * self.bs;
        self.data[at + off..at + end].copy_from_slice(src);
        self.meta[s as usize].dirty = true;
        Ok(())
    }

    /// Write every dirty block back (ascending, contiguous runs in one call), then flush the
    /// device.
    pub fn flush(&mut self) -> Result<(), BlockError> {
        let dirty: Vec<u32> = self
            .map
            .values()
            .copied()
            .filter(|&s| self.meta[s as usize].dirty)
            .collect();
        for s in dirty {
            // An earlier run may have cleaned it.
            if self.meta[s as usize].dirty {
                self.write_back_from(s)?;
            }
        }
        self.dev.flush()
    }

    /// Write back the dirty run that starts at slot `s`'s block (ascending only).
    fn write_back_from(&mut self, s: u32) -> Result<(), BlockError> {
        let lba = self.meta[s as usize].lba;
        let dirty = |c: &Self, b: u64| c.map.get(&b).is_some_and(|&t| c.meta[t as usize].dirty);
        let mut hi = lba;
        while hi - lba + 1 < self.cfg.write_run && dirty(self, hi + 1) {
            hi += 1;
        }
        let mut run = core::mem::take(&mut self.run);
        run.clear();
        for b in lba..=hi {
            let t = self.map[&b];
            run.extend_from_slice(&self.data[self.bytes(t)]);
        }
        let r = self.dev.write_blocks(lba, &run);
        self.run = run;
        r?;
        for b in lba..=hi {
            let t = self.map[&b];
            self.meta[t as usize].dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Small test numbers.
mod tests {
    use super::*;
    use crate::fat::RamDisk;

    const BS: usize = 512;
    const BLOCKS: u64 = 64;

    /// xorshift64: a fixed sequence of operations, no dependency.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    fn small() -> CacheConfig {
        CacheConfig {
            blocks: 16,
            read_ahead: 4,
            prefetch_runs: 2,
            write_run: 6,
        }
    }

    /// Random reads, writes (whole blocks, several blocks, parts of one) and flushes through the
    /// cache agree with a plain copy of the disk at every read, and the device equals it after
    /// each flush.
    #[test]
    fn the_cache_is_invisible_except_for_timing() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut model = vec![0u8; BS * BLOCKS as usize];
        let mut c = BlockCache::new(Box::new(dev.clone()), small());
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
                    c.flush().unwrap();
                    assert_eq!(c.dirty(), 0);
                    assert!(dev.image() == model, "step {step}: flushed");
                }
                1..=5 => {
                    let fill = (next(&mut x) & 0xff) as u8;
                    let data: Vec<u8> = (0..range.len()).map(|i| fill ^ i as u8).collect();
                    c.write(lba, &data).unwrap();
                    model[range].copy_from_slice(&data);
                }
                6 | 7 => {
                    let off = (next(&mut x) % BS as u64) as usize;
                    let len = (next(&mut x) % (BS - off) as u64) as usize;
                    let fill = (next(&mut x) & 0xff) as u8;
                    let at = lba as usize * BS + off;
                    c.write_part(lba, off, &vec![fill; len]).unwrap();
                    model[at..at + len].fill(fill);
                }
                8 => {
                    let off = (next(&mut x) % BS as u64) as usize;
                    let mut out = vec![0u8; BS - off];
                    c.read_part(lba, off, &mut out).unwrap();
                    let at = lba as usize * BS + off;
                    assert!(out == model[at..at + out.len()], "step {step}: part");
                }
                _ => {
                    let mut buf = vec![0u8; range.len()];
                    c.read(lba, &mut buf).unwrap();
                    assert!(buf == model[range], "step {step}: read {n} at {lba}");
                }
            }
            assert!(c.cached() <= 16);
        }
        assert_eq!(c.read(BLOCKS, &mut [0u8; BS]), Err(BlockError::OutOfRange));
        assert_eq!(c.write(0, &[0u8; 100]), Err(BlockError::OutOfRange));
        assert_eq!(
            c.read_part(BLOCKS, 0, &mut [0u8; 4]),
            Err(BlockError::OutOfRange)
        );
        assert_eq!(
            c.write_part(0, BS - 2, &[0u8; 4]),
            Err(BlockError::OutOfRange)
        );
    }

    #[test]
    fn metadata_rewrites_stay_in_the_cache_until_a_flush() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut c = BlockCache::new(Box::new(dev.clone()), small());
        // Read-modify-write of two "FAT" blocks, alternately, as the FAT library does.
        for round in 0..100u8 {
            for lba in [1, 9] {
                c.write_part(lba, usize::from(round), &[round]).unwrap();
            }
        }
        assert_eq!(dev.counts(), (2, 0, 0), "one read run each, no write yet");
        assert_eq!(dev.image()[BS + 99], 0, "not written back yet");
        c.flush().unwrap();
        assert_eq!(
            dev.counts(),
            (2, 2, 1),
            "each dirty block once, then the flush"
        );
        assert_eq!(dev.image()[BS + 99], 99);
        assert_eq!(dev.image()[9 * BS + 99], 99);
    }

    #[test]
    fn runs_are_read_and_written_in_one_call() {
        let dev = RamDisk::new(BS, BLOCKS);
        let mut c = BlockCache::new(Box::new(dev.clone()), small());
        let mut block = [0u8; BS];
        for lba in 0..BLOCKS {
            c.read(lba, &mut block).unwrap();
        }
        assert_eq!(dev.counts().0, BLOCKS / 4, "read-ahead runs of four");
        // Whole-block writes are not read first; eviction writes dirty runs of up to six.
        let before = dev.counts();
        let data = vec![7u8; 12 * BS];
        c.write(20, &data).unwrap();
        c.flush().unwrap();
        let after = dev.counts();
        assert_eq!(after.0, before.0, "no reads for whole-block writes");
        assert_eq!(
            after.1 - before.1,
            2,
            "twelve dirty blocks in two runs of six"
        );
        assert!(dev.image()[20 * BS..32 * BS].iter().all(|&b| b == 7));
        // A failing device: the error reaches the caller and nothing stale is served after.
        dev.set_failing(true);
        c.write(40, &data[..BS]).unwrap();
        assert_eq!(c.flush(), Err(BlockError::Io));
        assert_eq!(c.dirty(), 1, "still dirty after a failed write-back");
        let mut fresh = BlockCache::new(Box::new(dev.clone()), small());
        assert_eq!(fresh.read(3, &mut block), Err(BlockError::Io));
        assert_eq!(fresh.cached(), 0);
        dev.set_failing(false);
        c.flush().unwrap();
        assert!(dev.image()[40 * BS..41 * BS].iter().all(|&b| b == 7));
    }

    /// A device that records the prefetch hints it gets.
    struct Hints(RamDisk, alloc::rc::Rc<core::cell::RefCell<Vec<(u64, u64)>>>);

    impl BlockDevice for Hints {
        fn block_size(&self) -> usize {
            self.0.block_size()
        }
        fn block_count(&self) -> u64 {
            self.0.block_count()
        }
        fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
            self.0.read_blocks(lba, buf)
        }
        fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
            self.0.write_blocks(lba, buf)
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            self.0.flush()
        }
        fn prefetch(&mut self, lba: u64, blocks: u64) {
            self.1.borrow_mut().push((lba, blocks));
        }
        fn poll(&mut self) {
            self.1.borrow_mut().push((u64::MAX, 0));
        }
    }

    #[test]
    fn sequential_readers_prefetch_the_next_runs_once() {
        let hints = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
        let dev = Hints(RamDisk::new(BS, BLOCKS), hints.clone());
        let mut c = BlockCache::new(Box::new(dev), small());
        let mut block = [0u8; BS];
        for lba in 0..16 {
            c.read(lba, &mut block).unwrap();
        }
        // The first miss is not known to be sequential; from the second on, two runs ahead.
        assert_eq!(*hints.borrow(), [(8, 4), (12, 4), (16, 4), (20, 4)]);
        // A random read does not prefetch.
        hints.borrow_mut().clear();
        c.read(40, &mut block).unwrap();
        assert!(hints.borrow().is_empty());
        // A notification of the device reaches it.
        c.poll();
        assert_eq!(*hints.borrow(), [(u64::MAX, 0)]);
    }
}
