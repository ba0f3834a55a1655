// SPDX-License-Identifier: BSD-2-Clause
//! The split virtqueue (virtio 1.2 §2.7), driver side, in one [`DmaRegion`].
//!
//! Layout for a queue of `n` entries (a power of two), from offset 0 of the region:
//!
//! | part | offset | size | contents (little-endian) |
//! |---|---|---|---|
//! | descriptor table | 0 | 16·n | `addr` u64, `len` u32, `flags` u16 (NEXT 1, WRITE 2), `next` u16 |
//! | available ring | 16·n | 6 + 2·n | `flags` u16, `idx` u16, `ring[n]` u16, `used_event` u16 |
//! | used ring | next multiple of 4 | 6 + 8·n | `flags` u16, `idx` u16, `ring[n]` {`id` u32, `len` u32}, `avail_event` u16 |
//!
//! - **Adding** a chain: its descriptors come from a free list kept privately (the device may
//!   scribble on the table; we never read it back), are written, the chain's head goes into the
//!   next available slot, then a Release fence and the new available `idx`: the device that sees
//!   the index sees the chain.
//! - **Notifying**: after a SeqCst fence, unless the device set `VIRTQ_USED_F_NO_NOTIFY` (no
//!   event-index feature).
//! - **Used entries**: the used `idx` is read, then an Acquire fence, then the entries. An entry
//!   whose id is not the head of a chain we handed out is skipped; a used index more than `n`
//!   ahead of ours marks the queue broken (nothing more is taken from it).

use super::DmaRegion;
use core::sync::atomic::{Ordering, fence};

/// Largest queue this driver sets up (its private bookkeeping is sized for it).
pub const MAX_QUEUE_SIZE: u16 = 256;

const MAX: usize = MAX_QUEUE_SIZE as usize;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const USED_F_NO_NOTIFY: u16 = 1;

/// One buffer of a chain, as the device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Device (I/O) address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// The device writes it (otherwise it only reads it).
    pub device_writes: bool,
}

/// A chain the device has finished with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The chain's head descriptor (what [`SplitQueue::add`] returned).
    pub head: u16,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}

/// Why a queue could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The size is 0, not a power of two, or above [`MAX_QUEUE_SIZE`].
    Size(u16),
    /// The rings do not fit the region.
    TooSmall {
        /// Bytes the rings need.
        needed: usize,
        /// Bytes the region has.
        have: usize,
    },
}

/// A split virtqueue, driver side; see the module docs.
#[derive(Debug)]
pub struct SplitQueue {
    mem: DmaRegion,
    size: u16,
    avail: usize,
    used: usize,
    free_head: u16,
    num_free: u16,
    /// The descriptor after each one: the free list, and the links of chains in use.
    next: [u16; MAX],
    /// At a head in use: its chain's length; 0 elsewhere.
    chain: [u16; MAX],
    avail_idx: u16,
    last_used: u16,
    broken: bool,
}

impl SplitQueue {
    /// Offsets of the available and used rings and the total size of a queue of `size` entries.
    pub fn layout(size: u16) -> (usize, usize, usize) {
        let n = usize::from(size);
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        (avail, used, used + 6 + 8 * n)
    }

    /// A queue of `size` entries at the start of `mem`, zeroed (both ring indices 0), every
    /// descriptor free.
    pub fn new(mut mem: DmaRegion, size: u16) -> Result<Self, QueueError> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::Size(size));
        }
        let (avail, used, total) = Self::layout(size);
        if total > mem.len() {
            return Err(QueueError::TooSmall {
                needed: total,
                have: mem.len(),
            });
        }
        for off in (0..total).step_by(2) {
            mem.write16(off, 0);
        }
        let mut next = [0; MAX];
        for (i, n) in (1..).zip(next.iter_mut()) {
            *n = i;
        }
        Ok(Self {
            mem,
            size,
            avail,
            used,
            free_head: 0,
            num_free: size,
            next,
            chain: [0; MAX],
            avail_idx: 0,
            last_used: 0,
            broken: false,
        })
    }

    /// Entries in the queue.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors free now.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// The head the next [`add`](Self::add) will use, if a descriptor is free (a driver that
    /// keeps per-request data by head writes it before adding).
    pub fn next_head(&self) -> Option<u16> {
        (self.num_free > 0).then_some(self.free_head)
    }

    /// Device address of the descriptor table (`QueueDesc`).
    pub fn desc_addr(&self) -> u64 {
        self.mem.io_addr(0)
    }

    /// Device address of the available ring (`QueueDriver`).
    pub fn driver_addr(&self) -> u64 {
        self.mem.io_addr(self.avail)
    }

    /// Device address of the used ring (`QueueDevice`).
    pub fn device_addr(&self) -> u64 {
        self.mem.io_addr(self.used)
    }

    /// Whether the device broke the used-ring protocol (nothing more is taken from it).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Hand the chain `bufs` to the device; returns its head, or `None` (nothing done) when it is
    /// empty or fewer descriptors are free.
    pub fn add(&mut self, bufs: &[Buffer]) -> Option<u16> {
        let n = u16::try_from(bufs.len()).ok().filter(|&n| n > 0)?;
        if n > self.num_free {
            return None;
        }
        let head = self.free_head;
        let mut d = head;
        for (i, b) in bufs.iter().enumerate() {
            let more = i + 1 < bufs.len();
            let off = 16 * usize::from(d);
            let flags =
                if more { DESC_F_NEXT } else { 0 } | if b.device_writes { DESC_F_WRITE } else { 0 };
            self.mem.write64(off, b.addr);
            self.mem.write32(off + 8, b.len);
            self.mem.write16(off + 12, flags);
            self.mem
                .write16(off + 14, if more { self.next[usize::from(d)] } else { 0 });
            if more {
                d = self.next[usize::from(d)];
            }
        }
        self.free_head = self.next[usize::from(d)];
        self.num_free -= n;
        self.chain[usize::from(head)] = n;
        let slot = usize::from(self.avail_idx % self.size);
        self.mem.write16(self.avail + 4 + 2 * slot, head);
        // Release: the descriptors and the ring entry are visible before the index that
        // publishes them.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem.write16(self.avail + 2, self.avail_idx);
        Some(head)
    }

    /// Whether the device wants a notification for what was added.
    pub fn should_notify(&self) -> bool {
        // SeqCst: our index store is ordered before the flag load (the device's flag store and its
        // index load are ordered the same way on its side).
        fence(Ordering::SeqCst);
        self.mem.read16(self.used) & USED_F_NO_NOTIFY == 0
    }

    /// The next chain the device finished, its descriptors freed.
    pub fn pop_used(&mut self) -> Option<Used> {
        while !self.broken {
            let idx = self.mem.read16(self.used + 2);
            if idx == self.last_used {
                return None;
            }
            // Acquire: the entry (and the buffers) the device wrote before its index.
            fence(Ordering::Acquire);
            if idx.wrapping_sub(self.last_used) > self.size {
                self.broken = true;
                return None;
            }
            let off = self.used + 4 + 8 * usize::from(self.last_used % self.size);
            let (id, len) = (self.mem.read32(off), self.mem.read32(off + 4));
            self.last_used = self.last_used.wrapping_add(1);
            let Some(head) = u16::try_from(id).ok().filter(|&h| h < self.size) else {
                continue;
            };
            let n = core::mem::take(&mut self.chain[usize::from(head)]);
            if n == 0 {
                continue;
            }
            let mut last = head;
            for _ in 1..n {
                last = self.next[usize::from(last)];
            }
            self.next[usize::from(last)] = self.free_head;
            self.free_head = head;
            self.num_free += n;
            return Some(Used { head, len });
        }
        None
    }
}
