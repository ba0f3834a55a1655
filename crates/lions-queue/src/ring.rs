// SPDX-License-Identifier: BSD-2-Clause
//! The role-typed ring handles.
//!
//! A [`Producer`] owns the tail, a [`Consumer`] owns the head. Each keeps a private copy of both
//! indices and of the capacity; it reads the peer's index from shared memory with an Acquire load,
//! checks it against what the ring protocol allows, and publishes its own with a Release store.
//! Entries are staged locally (`push`/`pop`) and made visible in one store (`publish`/`release`),
//! which is what makes batching cheap.

use crate::capacity::{Capacity, CapacityError};
use crate::index::RingIndex;
use crate::sync::{Ordering, Slot, read_run, write_run};
use zerocopy::FromBytes;

/// Which index a misbehaving peer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexField {
    /// The consumer's `head`.
    Head,
    /// The producer's `tail`.
    Tail,
}

/// The peer wrote an index the protocol cannot produce (length above capacity, an index that moved
/// backwards or past ours). Nothing was read or written because of it; the handle keeps its last
/// good view, so the caller may stop serving this peer or retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerError {
    /// The offending field.
    pub field: IndexField,
    /// The value read from shared memory.
    pub value: u64,
    /// Lowest value the protocol allowed at this point (free-running, wraps).
    pub low: u64,
    /// Highest value the protocol allowed (free-running, wraps).
    pub high: u64,
}

impl core::fmt::Display for PeerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.field {
            IndexField::Head => "head",
            IndexField::Tail => "tail",
        };
        write!(
            f,
            "peer wrote {name} = {}, outside [{}, {}]",
            self.value, self.low, self.high
        )
    }
}

impl core::error::Error for PeerError {}

/// Why a handle could not be made over a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The capacity does not fit the storage.
    Capacity(CapacityError),
    /// The indices already in shared memory are inconsistent.
    Peer(PeerError),
}

impl From<CapacityError> for HandleError {
    fn from(e: CapacityError) -> Self {
        Self::Capacity(e)
    }
}

impl From<PeerError> for HandleError {
    fn from(e: PeerError) -> Self {
        Self::Peer(e)
    }
}

impl core::fmt::Display for HandleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Capacity(e) => e.fmt(f),
            Self::Peer(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for HandleError {}

/// Why [`Producer::push`] did not enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// The ring is full; the entry is handed back.
    Full(T),
    /// The consumer wrote an impossible head; the entry is handed back.
    Peer(PeerError, T),
}

/// The shared fields of one ring, borrowed for `'a`.
struct Shared<'a, I: RingIndex, T> {
    head: &'a I::Atomic,
    tail: &'a I::Atomic,
    slots: &'a [Slot<T>],
    cap: Capacity,
}

impl<'a, I: RingIndex, T> Shared<'a, I, T> {
    fn new(
        head: &'a I::Atomic,
        tail: &'a I::Atomic,
        slots: &'a [Slot<T>],
        cap: Capacity,
    ) -> Result<Self, CapacityError> {
        let have = slots.len() as u64;
        if have < cap.slots() {
            return Err(CapacityError::StorageTooSmall {
                needed: cap.slots(),
                have,
            });
        }
        Ok(Self {
            head,
            tail,
            slots,
            cap,
        })
    }

    /// Read both indices when a handle is made (a restarted component resumes from shared memory).
    fn snapshot(&self) -> Result<(I, I), PeerError> {
        let tail = I::load(self.tail, Ordering::Acquire);
        let head = I::load(self.head, Ordering::Acquire);
        if tail.dist_from(head) > self.cap.usable() {
            return Err(PeerError {
                field: IndexField::Tail,
                value: tail.to_u64(),
                low: head.to_u64(),
                high: head.add(self.cap.usable()).to_u64(),
            });
        }
        Ok((head, tail))
    }
}

/// The producing end of a ring: the only handle that writes entries and the tail.
pub struct Producer<'a, I: RingIndex, T> {
    ring: Shared<'a, I, T>,
    /// Tail including staged entries.
    local_tail: I,
    /// Tail as last published to shared memory.
    shared_tail: I,
    /// Last validated head.
    head: I,
    /// First index we may not write by that head: `push` is one comparison with it.
    limit: I,
}

/// The consuming end of a ring: the only handle that reads entries and writes the head.
pub struct Consumer<'a, I: RingIndex, T> {
    ring: Shared<'a, I, T>,
    /// Head including locally consumed entries.
    local_head: I,
    /// Head as last published to shared memory.
    shared_head: I,
    /// Last validated tail.
    tail: I,
}

impl<'a, I: RingIndex, T: Copy + FromBytes> Producer<'a, I, T> {
    /// Producer over shared ring fields.
    ///
    /// # Safety
    /// While the handle lives, no other producer handle exists over the same ring (in any process),
    /// and the memory stays mapped. The consumer may be anywhere.
    pub unsafe fn new(
        head: &'a I::Atomic,
        tail: &'a I::Atomic,
        slots: &'a [Slot<T>],
        cap: Capacity,
    ) -> Result<Self, HandleError> {
        let ring = Shared::new(head, tail, slots, cap)?;
        let (head, tail) = ring.snapshot()?;
        let mut p = Self {
            ring,
            local_tail: tail,
            shared_tail: tail,
            head,
            limit: tail,
        };
        p.limit = p.compute_limit();
        Ok(p)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> Capacity {
        self.ring.cap
    }

    /// The first index we may not write, by what we last saw of the head.
    fn compute_limit(&self) -> I {
        let full = self.head.add(self.ring.cap.usable());
        if self.ring.cap.is_power_of_two() {
            return full;
        }
        // `index % slots` jumps at the wrap: never let live entries straddle it.
        let (tail, head) = (self.local_tail.to_u64(), self.head.to_u64());
        if tail < head {
            // Live entries sit before the wrap and we are past it: wait until they drain.
            self.local_tail
        } else if full.to_u64() < head {
            // The usable window reaches past the wrap: stop at it (index MAX + 1 wraps to 0).
            I::ZERO
        } else {
            full
        }
    }

    /// Entries that may still be pushed by what we last saw of the head.
    fn free_cached(&self) -> u64 {
        self.limit.dist_from(self.local_tail)
    }

    /// Re-read the consumer's head (Acquire: its reads of the slots it freed happen before our
    /// writes to them) and check it lies between our last view and our published tail.
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        let head = I::load(self.ring.head, Ordering::Acquire);
        let moved = head.dist_from(self.head);
        let allowed = self.shared_tail.dist_from(self.head);
        if moved > allowed {
            return Err(PeerError {
                field: IndexField::Head,
                value: head.to_u64(),
                low: self.head.to_u64(),
                high: self.shared_tail.to_u64(),
            });
        }
        self.head = head;
        self.limit = self.compute_limit();
        Ok(())
    }

    /// `refresh` out of line: the hot `push` path stays small.
    #[cold]
    #[inline(never)]
    fn refresh_cold(&mut self) -> Result<(), PeerError> {
        self.refresh()
    }

    /// Free entries now (re-reads the head).
    pub fn free(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.free_cached())
    }

    /// Whether no entry can be pushed now (re-reads the head).
    pub fn is_full(&mut self) -> Result<bool, PeerError> {
        Ok(self.free()? == 0)
    }

    /// Entries in the ring, published and staged, by the freshest head.
    pub fn len(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.local_tail.dist_from(self.head))
    }

    /// Whether the ring is empty, published and staged, by the freshest head.
    pub fn is_empty(&mut self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }

    /// Stage one entry; it becomes visible to the consumer at the next [`publish`](Self::publish).
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        if self.local_tail == self.limit {
            if let Err(e) = self.refresh_cold() {
                return Err(PushError::Peer(e, value));
            }
            if self.local_tail == self.limit {
                return Err(PushError::Full(value));
            }
        }
        let slot = &self.ring.slots[self.ring.cap.slot(self.local_tail.to_u64())];
        // SAFETY: the slot lies outside [head, tail) of the consumer's view (free_cached > 0), so by
        // the ring protocol the consumer does not read it until we publish.
        unsafe { slot.write(value) };
        self.local_tail = self.local_tail.add(1);
        Ok(())
    }

    /// Stage as many entries from `values` as fit, copying contiguous runs of slots at once; returns
    /// how many. A peer error is returned only when nothing could be staged.
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, PeerError> {
        if self.free_cached() < values.len() as u64
            && let Err(e) = self.refresh()
            && self.free_cached() == 0
        {
            return Err(e);
        }
        // `free_cached() <= usable <= slots`, which fits a usize (checked against the storage).
        #[allow(clippy::cast_possible_truncation)]
        let n = (self.free_cached() as usize).min(values.len());
        let start = self.ring.cap.slot(self.local_tail.to_u64());
        let first = n.min(self.ring.cap.slot_count() - start);
        // SAFETY: the `n` slots from `local_tail` lie outside the consumer's [head, tail), so by the
        // ring protocol it does not read them until we publish; they are the `first` slots from
        // `start` and then the next `n - first` from slot 0 (the slot mapping never jumps inside a
        // run the limit allows, see `compute_limit`).
        unsafe {
            write_run(&self.ring.slots[start..], &values[..first]);
            write_run(&self.ring.slots[..n - first], &values[first..n]);
        }
        self.local_tail = self.local_tail.add(n as u64);
        Ok(n)
    }

    /// Entries staged but not yet published.
    pub fn staged(&self) -> u64 {
        self.local_tail.dist_from(self.shared_tail)
    }

    /// Drop every staged entry (an aborted transaction).
    pub fn abort(&mut self) {
        self.local_tail = self.shared_tail;
        self.limit = self.compute_limit();
    }

    /// Make every staged entry visible with one Release store of the tail (our slot writes happen
    /// before the consumer's Acquire load sees the new tail). Returns how many were published.
    #[inline]
    pub fn publish(&mut self) -> u64 {
        let n = self.staged();
        if n != 0 {
            I::store(self.ring.tail, self.local_tail, Ordering::Release);
            self.shared_tail = self.local_tail;
        }
        n
    }

    /// Push and publish one entry.
    #[inline]
    pub fn enqueue(&mut self, value: T) -> Result<(), PushError<T>> {
        self.push(value)?;
        self.publish();
        Ok(())
    }
}

impl<'a, I: RingIndex, T: Copy + FromBytes> Consumer<'a, I, T> {
    /// Consumer over shared ring fields.
    ///
    /// # Safety
    /// While the handle lives, no other consumer handle exists over the same ring (in any process),
    /// and the memory stays mapped. The producer may be anywhere.
    pub unsafe fn new(
        head: &'a I::Atomic,
        tail: &'a I::Atomic,
        slots: &'a [Slot<T>],
        cap: Capacity,
    ) -> Result<Self, HandleError> {
        let ring = Shared::new(head, tail, slots, cap)?;
        let (head, tail) = ring.snapshot()?;
        Ok(Self {
            ring,
            local_head: head,
            shared_head: head,
            tail,
        })
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> Capacity {
        self.ring.cap
    }

    /// Re-read the producer's tail (Acquire: its slot writes happen before our reads) and check the
    /// length it implies lies between what we already saw and the capacity.
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        let tail = I::load(self.ring.tail, Ordering::Acquire);
        let len = tail.dist_from(self.shared_head);
        let seen = self.tail.dist_from(self.shared_head);
        if len < seen || len > self.ring.cap.usable() {
            return Err(PeerError {
                field: IndexField::Tail,
                value: tail.to_u64(),
                low: self.tail.to_u64(),
                high: self.shared_head.add(self.ring.cap.usable()).to_u64(),
            });
        }
        self.tail = tail;
        Ok(())
    }

    /// `refresh` out of line: the hot `pop` path stays small.
    #[cold]
    #[inline(never)]
    fn refresh_cold(&mut self) -> Result<(), PeerError> {
        self.refresh()
    }

    /// Entries available to pop now (re-reads the tail).
    pub fn len(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.tail.dist_from(self.local_head))
    }

    /// Whether nothing is available (re-reads the tail).
    pub fn is_empty(&mut self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }

    /// The next entry without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<T>, PeerError> {
        if self.local_head == self.tail {
            self.refresh_cold()?;
            if self.local_head == self.tail {
                return Ok(None);
            }
        }
        let slot = &self.ring.slots[self.ring.cap.slot(self.local_head.to_u64())];
        // SAFETY: the slot lies in [head, tail) as published by the producer and observed with
        // Acquire, so the producer does not write it until we publish a head past it.
        Ok(Some(unsafe { slot.read() }))
    }

    /// Take the next entry; its slot is handed back to the producer at the next
    /// [`release`](Self::release).
    #[inline]
    pub fn pop(&mut self) -> Result<Option<T>, PeerError> {
        let v = self.peek()?;
        if v.is_some() {
            self.local_head = self.local_head.add(1);
        }
        Ok(v)
    }

    /// Pop up to `out.len()` entries, copying contiguous runs of slots at once; returns how many. A
    /// peer error is returned only when nothing could be popped.
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, PeerError> {
        if self.tail.dist_from(self.local_head) < out.len() as u64
            && let Err(e) = self.refresh()
            && self.local_head == self.tail
        {
            return Err(e);
        }
        // At most `usable <= slots` entries are available, which fits a usize.
        let mut avail = self.tail.dist_from(self.local_head);
        if !self.ring.cap.is_power_of_two() {
            // A C producer may let entries straddle the index wrap, where `index % slots` jumps:
            // copy only up to the wrap in one go.
            avail = avail.min((I::MAX - self.local_head.to_u64()).saturating_add(1));
        }
        #[allow(clippy::cast_possible_truncation)]
        let n = (avail as usize).min(out.len());
        let start = self.ring.cap.slot(self.local_head.to_u64());
        let first = n.min(self.ring.cap.slot_count() - start);
        // SAFETY: the `n` slots from `local_head` lie in [head, tail) as published by the producer
        // and observed with Acquire; they are the `first` slots from `start`, then slots from 0.
        unsafe {
            read_run(&self.ring.slots[start..], &mut out[..first]);
            read_run(&self.ring.slots[..n - first], &mut out[first..n]);
        }
        self.local_head = self.local_head.add(n as u64);
        Ok(n)
    }

    /// Entries popped but whose slots are not yet handed back.
    pub fn consumed(&self) -> u64 {
        self.local_head.dist_from(self.shared_head)
    }

    /// Hand every popped slot back with one Release store of the head (our slot reads happen before
    /// the producer's Acquire load sees it). Returns how many.
    #[inline]
    pub fn release(&mut self) -> u64 {
        let n = self.consumed();
        if n != 0 {
            I::store(self.ring.head, self.local_head, Ordering::Release);
            self.shared_head = self.local_head;
        }
        n
    }

    /// Pop one entry and release its slot at once.
    #[inline]
    pub fn dequeue(&mut self) -> Result<Option<T>, PeerError> {
        let v = self.pop()?;
        self.release();
        Ok(v)
    }
}
