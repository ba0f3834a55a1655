// SPDX-License-Identifier: BSD-2-Clause
//! The role-typed ring handles.
//!
//! A [`Producer`] owns the tail, a [`Consumer`] owns the head. Each keeps a private copy of both
//! indices and of the capacity; it reads the peer's index from shared memory with an Acquire load,
//! checks it against what the ring protocol allows, and publishes its own with a Release store.
//! Entries are staged locally (`push`/`pop`) and made visible in one store (`publish`/`release`),
//! which is what makes batching cheap.
//!
//! The capacity is checked once, when a handle is made: for a power of two the handle keeps the
//! mask `slots - 1`, and a slot is `index & mask` with no further test and no bounds check (the mask
//! is below the array length by construction, see `SlotArray`). The hot paths compare our index
//! with one cached limit (`push`: the head seen plus the usable length; `pop`: the tail seen) and
//! fall to a slow path only at that limit, where the peer's index is re-read with Acquire and
//! checked (a compare and a branch inline; a peer index that has not moved since it was last
//! checked skips even that). Fixed wire capacities that are not a power of two (I²C 254, fs 511) pin
//! that limit to the current index, so every operation on them takes the slow path, which applies
//! `index % slots` and the wrap rule; the power-of-two path never tests for them.

use crate::capacity::{Capacity, CapacityError};
use crate::index::RingIndex;
use crate::sync::{Ordering, Slot, read_array, read_run, write_run};
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

/// The entry array with the mask that reaches its slots, fixed when a handle is made.
///
/// Invariant (checked in [`SlotArray::new`], never changed afterwards): `mask < slots.len()`. So
/// `index & mask` is a slot of the array for every index, and [`at`](Self::at) needs no bounds
/// check. For a power-of-two capacity `mask = slots - 1` and `index & mask` *is* the wire's
/// `index % slots`; for a fixed wire capacity that is not a power of two `mask = 0`, and the handles
/// never take the masked path for it (their fast-path limits are pinned, see `Producer::limit` and
/// `Consumer::stop`), reaching its slots by `%` on the slow path instead.
struct SlotArray<'a, T> {
    slots: &'a [Slot<T>],
    mask: usize,
}

impl<'a, T> SlotArray<'a, T> {
    fn new(slots: &'a [Slot<T>], cap: Capacity) -> Result<Self, CapacityError> {
        let have = slots.len() as u64;
        if have < cap.slots() {
            return Err(CapacityError::StorageTooSmall {
                needed: cap.slots(),
                have,
            });
        }
        // `slots - 1 < slots <= slots.len()`, which is a usize, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let mask = if cap.is_power_of_two() {
            (cap.slots() - 1) as usize
        } else {
            0
        };
        Ok(Self { slots, mask })
    }

    /// Number of slots the mask reaches (`mask + 1 <= slots.len()`).
    #[inline(always)]
    fn size(&self) -> usize {
        self.mask + 1
    }

    /// Slot of `index` by mask.
    #[inline(always)]
    fn at<I: RingIndex>(&self, index: I) -> &'a Slot<T> {
        // Truncating before masking gives the same bits as masking first: `mask` fits a usize.
        #[allow(clippy::cast_possible_truncation)]
        let i = index.to_u64() as usize & self.mask;
        // SAFETY: `i <= mask < slots.len()` (the invariant of `SlotArray`).
        unsafe { self.slots.get_unchecked(i) }
    }

    /// The slots of the `n` indices from `index`, by mask: a run up to the end of the masked array
    /// and a run from its start. At most `size()` slots in all, whatever `n`.
    #[inline(always)]
    fn runs<I: RingIndex>(&self, index: I, n: usize) -> (&'a [Slot<T>], &'a [Slot<T>]) {
        #[allow(clippy::cast_possible_truncation)]
        let start = index.to_u64() as usize & self.mask;
        let first = n.min(self.size() - start);
        let second = (n - first).min(start);
        // SAFETY: `start + first <= size() <= slots.len()` and `second <= start < slots.len()`.
        unsafe {
            (
                self.slots.get_unchecked(start..start + first),
                self.slots.get_unchecked(..second),
            )
        }
    }

    /// Slot of `index` by the wire rule `index % slots` (fixed capacities, slow path only).
    #[inline]
    fn modulo<I: RingIndex>(&self, cap: Capacity, index: I) -> &'a Slot<T> {
        // `cap.slot(..) < cap.slots() <= slots.len()` (checked in `new`); indexing stays checked
        // here because this path is not the hot one.
        &self.slots[cap.slot(index.to_u64())]
    }
}

/// Read both indices when a handle is made (a restarted component resumes from shared memory).
fn snapshot<I: RingIndex>(
    head: &I::Atomic,
    tail: &I::Atomic,
    cap: Capacity,
) -> Result<(I, I), PeerError> {
    let tail = I::load(tail, Ordering::Acquire);
    let head = I::load(head, Ordering::Acquire);
    if tail.dist_from(head) > cap.usable() {
        return Err(PeerError {
            field: IndexField::Tail,
            value: tail.to_u64(),
            low: head.to_u64(),
            high: head.add(cap.usable()).to_u64(),
        });
    }
    Ok((head, tail))
}

/// Re-read the consumer's head (Acquire: its reads of the slots it freed happen before our writes
/// to them) and check it lies between our last view `seen` and our published tail.
///
/// Inline, with the error built out of line: the check is a compare and a branch, and a head that
/// has not moved since `seen` (already checked) skips it.
#[inline(always)]
fn checked_head<I: RingIndex>(
    head_ref: &I::Atomic,
    seen: I,
    shared_tail: I,
) -> Result<I, PeerError> {
    let head = I::load(head_ref, Ordering::Acquire);
    if head != seen && head.dist_from(seen) > shared_tail.dist_from(seen) {
        return Err(head_error(head, seen, shared_tail));
    }
    Ok(head)
}

/// The error of a head outside `[seen, shared_tail]`.
#[cold]
#[inline(never)]
fn head_error<I: RingIndex>(head: I, seen: I, shared_tail: I) -> PeerError {
    PeerError {
        field: IndexField::Head,
        value: head.to_u64(),
        low: seen.to_u64(),
        high: shared_tail.to_u64(),
    }
}

/// Re-read the producer's tail (Acquire: its slot writes happen before our reads) and check the
/// length it implies lies between what we already saw (`seen`) and `usable`.
///
/// Inline, with the error built out of line, as `checked_head`; a tail that has not moved since
/// `seen` (already checked against a head no later than `shared_head`) skips the check.
#[inline(always)]
fn checked_tail<I: RingIndex>(
    tail_ref: &I::Atomic,
    shared_head: I,
    seen: I,
    usable: u64,
) -> Result<I, PeerError> {
    let tail = I::load(tail_ref, Ordering::Acquire);
    if tail != seen {
        let len = tail.dist_from(shared_head);
        if len < seen.dist_from(shared_head) || len > usable {
            return Err(tail_error(tail, shared_head, seen, usable));
        }
    }
    Ok(tail)
}

/// The error of a tail implying a length outside `[seen - shared_head, usable]`.
#[cold]
#[inline(never)]
fn tail_error<I: RingIndex>(tail: I, shared_head: I, seen: I, usable: u64) -> PeerError {
    PeerError {
        field: IndexField::Tail,
        value: tail.to_u64(),
        low: seen.to_u64(),
        high: shared_head.add(usable).to_u64(),
    }
}

/// The producing end of a ring: the only handle that writes entries and the tail.
pub struct Producer<'a, I: RingIndex, T> {
    /// Local copies of the hot fields first, so `push` touches one cache line of the handle.
    /// Tail including staged entries.
    local_tail: I,
    /// First index the masked fast path may not write: the head we last saw plus the usable
    /// length (power of two), or pinned to `local_tail` (fixed capacity, so every push takes the
    /// slow path, which applies the wrap rule).
    limit: I,
    slots: SlotArray<'a, T>,
    /// Tail as last published to shared memory.
    shared_tail: I,
    /// Last validated head.
    head: I,
    cap: Capacity,
    head_ref: &'a I::Atomic,
    tail_ref: &'a I::Atomic,
}

/// The consuming end of a ring: the only handle that reads entries and writes the head.
pub struct Consumer<'a, I: RingIndex, T> {
    /// Head including locally consumed entries.
    local_head: I,
    /// First index the masked fast path may not read: the last validated tail (power of two), or
    /// pinned to `local_head` (fixed capacity: every pop takes the slow path).
    stop: I,
    slots: SlotArray<'a, T>,
    /// Head as last published to shared memory.
    shared_head: I,
    /// Last validated tail.
    tail: I,
    cap: Capacity,
    head_ref: &'a I::Atomic,
    tail_ref: &'a I::Atomic,
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
        let slots = SlotArray::new(slots, cap)?;
        let (h, t) = snapshot::<I>(head, tail, cap)?;
        let mut p = Self {
            local_tail: t,
            limit: t,
            slots,
            shared_tail: t,
            head: h,
            cap,
            head_ref: head,
            tail_ref: tail,
        };
        p.set_limit();
        Ok(p)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    /// The first index we may not write, by what we last saw of the head.
    #[inline]
    fn write_limit(&self) -> I {
        let full = self.head.add(self.cap.usable());
        if self.cap.is_power_of_two() {
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

    /// Set the fast-path limit after the head or our tail moved other than by a masked push.
    #[inline]
    fn set_limit(&mut self) {
        self.limit = if self.cap.is_power_of_two() {
            self.write_limit()
        } else {
            self.local_tail
        };
    }

    /// Entries that may still be pushed by what we last saw of the head.
    #[inline]
    fn free_cached(&self) -> u64 {
        self.write_limit().dist_from(self.local_tail)
    }

    /// Re-read the consumer's head (Acquire: its reads of the slots it freed happen before our
    /// writes to them) and check it lies between our last view and our published tail.
    #[inline]
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        self.head = checked_head::<I>(self.head_ref, self.head, self.shared_tail)?;
        self.set_limit();
        Ok(())
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
    ///
    /// At the fast-path limit the head is re-read and checked inline by value (`checked_head`,
    /// its error built out of line), so the handle never escapes and a caller's loop can keep it
    /// in registers.
    #[inline(always)]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        if self.local_tail == self.limit {
            core::hint::cold_path();
            if self.free_cached() == 0 {
                match checked_head::<I>(self.head_ref, self.head, self.shared_tail) {
                    Ok(head) => {
                        self.head = head;
                        self.set_limit();
                    }
                    Err(e) => return Err(PushError::Peer(e, value)),
                }
                if self.free_cached() == 0 {
                    return Err(PushError::Full(value));
                }
            }
            if !self.cap.is_power_of_two() {
                // SAFETY: `free_cached() > 0`, so the slot lies outside the consumer's
                // [head, tail) and the window does not straddle the index wrap (`write_limit`).
                unsafe { self.slots.modulo(self.cap, self.local_tail).write(value) };
                self.local_tail = self.local_tail.add(1);
                self.set_limit();
                return Ok(());
            }
            // A power of two with room again: the limit moved past `local_tail`.
        }
        // SAFETY: `local_tail` lies before `limit = head + usable`, so its slot is outside the
        // consumer's [head, tail) and by the ring protocol it does not read it until we publish.
        unsafe { self.slots.at(self.local_tail).write(value) };
        self.local_tail = self.local_tail.add(1);
        Ok(())
    }

    /// Copy `values` into the slots from `local_tail` by mask, in at most two runs. The caller has
    /// checked that `values.len()` entries are free, so they are at most `slots` and the runs cover
    /// all of them.
    #[inline(always)]
    fn write_masked(&mut self, values: &[T]) {
        let (a, b) = self.slots.runs(self.local_tail, values.len());
        let (va, vb) = values.split_at(a.len());
        // SAFETY: the slots of the `values.len()` indices from `local_tail` lie outside the
        // consumer's [head, tail) (the caller checked they are free), so by the ring protocol it
        // does not read them until we publish.
        unsafe {
            write_run(a, va);
            if !b.is_empty() {
                write_run(b, vb);
            }
        }
        self.local_tail = self.local_tail.add(values.len() as u64);
    }

    /// Stage as many entries from `values` as fit, copying contiguous runs of slots at once; returns
    /// how many. A peer error is returned only when nothing could be staged.
    #[inline]
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, PeerError> {
        if self.limit.dist_from(self.local_tail) >= values.len() as u64 {
            self.write_masked(values);
            return Ok(values.len());
        }
        self.push_slice_slow(values)
    }

    /// `push_slice` beyond the fast-path limit: refresh the head, and the path of fixed capacities.
    #[inline(never)]
    fn push_slice_slow(&mut self, values: &[T]) -> Result<usize, PeerError> {
        if self.free_cached() < values.len() as u64
            && let Err(e) = self.refresh()
            && self.free_cached() == 0
        {
            return Err(e);
        }
        // `free_cached() <= usable <= slots`, which fits a usize (checked against the storage).
        #[allow(clippy::cast_possible_truncation)]
        let n = (self.free_cached() as usize).min(values.len());
        if self.cap.is_power_of_two() {
            self.write_masked(&values[..n]);
            return Ok(n);
        }
        let start = self.cap.slot(self.local_tail.to_u64());
        let first = n.min(self.cap.slot_count() - start);
        let slots = self.slots.slots;
        // SAFETY: the `n` slots from `local_tail` lie outside the consumer's [head, tail), so by the
        // ring protocol it does not read them until we publish; they are the `first` slots from
        // `start` and then the next `n - first` from slot 0 (the slot mapping never jumps inside a
        // run the limit allows, see `write_limit`).
        unsafe {
            write_run(&slots[start..], &values[..first]);
            write_run(&slots[..n - first], &values[first..n]);
        }
        self.local_tail = self.local_tail.add(n as u64);
        self.set_limit();
        Ok(n)
    }

    /// Stage entries from `values` straight into the slots, as many as fit or until it ends;
    /// returns how many (rtrb's `fill_from_iter`, without a private buffer in between). The head is
    /// re-read when the cached view has fewer free slots than `values` promises at least. A peer
    /// error is returned only when nothing could be staged.
    #[inline]
    pub fn push_iter<It: IntoIterator<Item = T>>(
        &mut self,
        values: It,
    ) -> Result<usize, PeerError> {
        let mut values = values.into_iter();
        let want = values.size_hint().0 as u64;
        let mut free = self.limit.dist_from(self.local_tail);
        if free < want.max(1) {
            if self.free_cached() < want.max(1)
                && let Err(e) = self.refresh()
                && self.free_cached() == 0
            {
                return Err(e);
            }
            if !self.cap.is_power_of_two() {
                return self.push_iter_fixed(values);
            }
            free = self.free_cached();
        }
        #[allow(clippy::cast_possible_truncation)]
        let (a, b) = self.slots.runs(self.local_tail, free as usize);
        let mut n = 0;
        'runs: {
            for slot in a {
                let Some(v) = values.next() else {
                    break 'runs;
                };
                // SAFETY: the slot is one of the `free` from `local_tail`, outside the consumer's
                // [head, tail); we are its only writer until we publish.
                unsafe { slot.write_plain(v) };
                n += 1;
            }
            for slot in b {
                let Some(v) = values.next() else {
                    break 'runs;
                };
                // SAFETY: as for the first run.
                unsafe { slot.write_plain(v) };
                n += 1;
            }
        }
        self.local_tail = self.local_tail.add(n as u64);
        Ok(n)
    }

    /// `push_iter` for fixed (non-power-of-two) capacities: slot by slot under the wrap rule. An
    /// item is taken from `values` only when there is a slot for it.
    #[inline(never)]
    fn push_iter_fixed(&mut self, mut values: impl Iterator<Item = T>) -> Result<usize, PeerError> {
        let mut n = 0;
        loop {
            if self.free_cached() == 0 {
                if let Err(e) = self.refresh() {
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
                if self.free_cached() == 0 {
                    break;
                }
            }
            let Some(v) = values.next() else { break };
            // SAFETY: `free_cached() > 0`: the slot lies outside the consumer's [head, tail) and the
            // window does not straddle the index wrap (see `write_limit`).
            unsafe { self.slots.modulo(self.cap, self.local_tail).write(v) };
            self.local_tail = self.local_tail.add(1);
            n += 1;
        }
        self.set_limit();
        Ok(n)
    }

    /// Entries staged but not yet published.
    pub fn staged(&self) -> u64 {
        self.local_tail.dist_from(self.shared_tail)
    }

    /// Drop every staged entry (an aborted transaction).
    pub fn abort(&mut self) {
        self.local_tail = self.shared_tail;
        self.set_limit();
    }

    /// Make every staged entry visible with one Release store of the tail (our slot writes happen
    /// before the consumer's Acquire load sees the new tail). Returns how many were published.
    #[inline]
    pub fn publish(&mut self) -> u64 {
        // Our fields are updated before the store: a Release store is a barrier the compiler does
        // not forward our own fields across, so updating them after it would reload them.
        let tail = self.local_tail;
        let n = tail.dist_from(self.shared_tail);
        if n != 0 {
            self.shared_tail = tail;
            I::store(self.tail_ref, tail, Ordering::Release);
        }
        n
    }

    /// Push and publish one entry.
    #[inline(always)]
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
        let slots = SlotArray::new(slots, cap)?;
        let (h, t) = snapshot::<I>(head, tail, cap)?;
        let mut c = Self {
            local_head: h,
            stop: h,
            slots,
            shared_head: h,
            tail: t,
            cap,
            head_ref: head,
            tail_ref: tail,
        };
        c.set_stop();
        Ok(c)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    /// Set the fast-path stop after the tail or our head moved other than by a masked pop.
    #[inline]
    fn set_stop(&mut self) {
        self.stop = if self.cap.is_power_of_two() {
            self.tail
        } else {
            self.local_head
        };
    }

    /// Re-read the producer's tail (Acquire: its slot writes happen before our reads) and check the
    /// length it implies lies between what we already saw and the capacity.
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        self.tail = checked_tail::<I>(
            self.tail_ref,
            self.shared_head,
            self.tail,
            self.cap.usable(),
        )?;
        self.set_stop();
        Ok(())
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
        if self.local_head == self.stop {
            return self.peek_slow();
        }
        // SAFETY: `local_head` lies in [head, tail) as published by the producer and observed with
        // Acquire, so the producer does not write its slot until we publish a head past it.
        Ok(Some(unsafe { self.slots.at(self.local_head).read() }))
    }

    /// `peek` at the fast-path stop: refresh the tail when nothing is cached, and the only path of
    /// fixed (non-power-of-two) capacities.
    #[cold]
    #[inline(never)]
    fn peek_slow(&mut self) -> Result<Option<T>, PeerError> {
        if self.local_head == self.tail {
            self.refresh()?;
            if self.local_head == self.tail {
                return Ok(None);
            }
        }
        let slot = if self.cap.is_power_of_two() {
            self.slots.at(self.local_head)
        } else {
            self.slots.modulo(self.cap, self.local_head)
        };
        // SAFETY: as in `peek`.
        Ok(Some(unsafe { slot.read() }))
    }

    /// Take the next entry; its slot is handed back to the producer at the next
    /// [`release`](Self::release).
    ///
    /// At the fast-path stop the tail is re-read and checked inline by value (`checked_tail`, its
    /// error built out of line), so the handle never escapes and a caller's loop can keep it in
    /// registers.
    #[inline(always)]
    pub fn pop(&mut self) -> Result<Option<T>, PeerError> {
        if self.local_head == self.stop {
            core::hint::cold_path();
            if self.local_head == self.tail {
                self.tail = checked_tail::<I>(
                    self.tail_ref,
                    self.shared_head,
                    self.tail,
                    self.cap.usable(),
                )?;
                self.set_stop();
                if self.local_head == self.tail {
                    return Ok(None);
                }
            }
            if !self.cap.is_power_of_two() {
                // SAFETY: as in `peek`.
                let v = unsafe { self.slots.modulo(self.cap, self.local_head).read() };
                self.local_head = self.local_head.add(1);
                self.set_stop();
                return Ok(Some(v));
            }
            // A power of two: the stop moved to the new tail, past `local_head`.
        }
        // SAFETY: as in `peek`.
        let v = unsafe { self.slots.at(self.local_head).read() };
        self.local_head = self.local_head.add(1);
        Ok(Some(v))
    }

    /// Copy the slots from `local_head` by mask into `out`, in at most two runs. The caller has
    /// checked that `out.len()` entries are available, so they are at most `slots` and the runs
    /// cover all of them.
    #[inline(always)]
    fn read_masked(&mut self, out: &mut [T]) {
        let (a, b) = self.slots.runs(self.local_head, out.len());
        let n = out.len();
        let (oa, ob) = out.split_at_mut(a.len());
        // SAFETY: the slots of the `n` indices from `local_head` lie in [head, tail) as published
        // by the producer and observed with Acquire (the caller checked they are available).
        unsafe {
            read_run(a, oa);
            if !b.is_empty() {
                read_run(b, ob);
            }
        }
        self.local_head = self.local_head.add(n as u64);
    }

    /// Pop up to `out.len()` entries, copying contiguous runs of slots at once; returns how many. A
    /// peer error is returned only when nothing could be popped.
    #[inline]
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, PeerError> {
        if self.stop.dist_from(self.local_head) >= out.len() as u64 {
            self.read_masked(out);
            return Ok(out.len());
        }
        self.pop_slice_slow(out)
    }

    /// `pop_slice` beyond the fast-path stop: refresh the tail, and the path of fixed capacities.
    #[inline(never)]
    fn pop_slice_slow(&mut self, out: &mut [T]) -> Result<usize, PeerError> {
        if self.tail.dist_from(self.local_head) < out.len() as u64
            && let Err(e) = self.refresh()
            && self.local_head == self.tail
        {
            return Err(e);
        }
        // At most `usable <= slots` entries are available, which fits a usize.
        let mut avail = self.tail.dist_from(self.local_head);
        if self.cap.is_power_of_two() {
            #[allow(clippy::cast_possible_truncation)]
            let n = (avail as usize).min(out.len());
            self.read_masked(&mut out[..n]);
            return Ok(n);
        }
        // A C producer may let entries straddle the index wrap, where `index % slots` jumps: copy
        // only up to the wrap in one go.
        avail = avail.min((I::MAX - self.local_head.to_u64()).saturating_add(1));
        #[allow(clippy::cast_possible_truncation)]
        let n = (avail as usize).min(out.len());
        let start = self.cap.slot(self.local_head.to_u64());
        let first = n.min(self.cap.slot_count() - start);
        let slots = self.slots.slots;
        // SAFETY: the `n` slots from `local_head` lie in [head, tail) as published by the producer
        // and observed with Acquire; they are the `first` slots from `start`, then slots from 0.
        unsafe {
            read_run(&slots[start..], &mut out[..first]);
            read_run(&slots[..n - first], &mut out[first..n]);
        }
        self.local_head = self.local_head.add(n as u64);
        self.set_stop();
        Ok(n)
    }

    /// Pop up to `max` entries in place: the returned iterator yields each entry by value, reading
    /// its slot once when it reaches it (see [`PopIter`]), with no copy through a private buffer
    /// (rtrb's `read_chunk`, without handing out references into shared memory). Every entry the
    /// iterator yields is popped; those it does not reach stay in the ring. Their slots are handed
    /// back at the next [`release`](Self::release). A peer error is returned only when nothing
    /// is available.
    #[inline]
    pub fn pop_iter(&mut self, max: usize) -> Result<PopIter<'_, 'a, I, T>, PeerError> {
        let avail = self.stop.dist_from(self.local_head);
        let (a, b) = if avail >= max as u64 {
            self.slots.runs(self.local_head, max)
        } else {
            self.pop_iter_runs(max)?
        };
        Ok(PopIter {
            a: a.iter(),
            b: b.iter(),
            n: a.len() + b.len(),
            consumer: self,
        })
    }

    /// `pop_iter` beyond the fast-path stop: refresh the tail, and the path of fixed capacities.
    /// Returns the (at most two) runs of slots the iterator may read.
    #[inline(never)]
    #[allow(clippy::type_complexity)]
    fn pop_iter_runs(&mut self, max: usize) -> Result<(&'a [Slot<T>], &'a [Slot<T>]), PeerError> {
        if self.tail.dist_from(self.local_head) < max as u64
            && let Err(e) = self.refresh()
            && self.local_head == self.tail
        {
            return Err(e);
        }
        let mut avail = self.tail.dist_from(self.local_head);
        if self.cap.is_power_of_two() {
            // At most `usable <= slots` entries are available, which fits a usize.
            #[allow(clippy::cast_possible_truncation)]
            let n = (avail as usize).min(max);
            return Ok(self.slots.runs(self.local_head, n));
        }
        // As in `pop_slice_slow`: never past the index wrap, where `index % slots` jumps.
        avail = avail.min((I::MAX - self.local_head.to_u64()).saturating_add(1));
        #[allow(clippy::cast_possible_truncation)]
        let n = (avail as usize).min(max);
        let start = self.cap.slot(self.local_head.to_u64());
        let first = n.min(self.cap.slot_count() - start);
        let slots = self.slots.slots;
        Ok((&slots[start..start + first], &slots[..n - first]))
    }

    /// Entries popped but whose slots are not yet handed back.
    pub fn consumed(&self) -> u64 {
        self.local_head.dist_from(self.shared_head)
    }

    /// Hand every popped slot back with one Release store of the head (our slot reads happen before
    /// the producer's Acquire load sees it). Returns how many.
    #[inline]
    pub fn release(&mut self) -> u64 {
        // As in `Producer::publish`: our fields first, then the store.
        let head = self.local_head;
        let n = head.dist_from(self.shared_head);
        if n != 0 {
            self.shared_head = head;
            I::store(self.head_ref, head, Ordering::Release);
        }
        n
    }

    /// Pop one entry and release its slot at once.
    #[inline(always)]
    pub fn dequeue(&mut self) -> Result<Option<T>, PeerError> {
        let v = self.pop()?;
        self.release();
        Ok(v)
    }
}

/// Slots `PopIter::fold` copies at once (64 bytes of `u64`, one cache line).
const FOLD_GROUP: usize = 8;

/// `PopIter::fold` over one run: groups of `FOLD_GROUP` slots are read in one go (still once each,
/// into a private array, so `f` sees values the compiler may combine, e.g. vectorise a sum); the
/// rest one by one.
///
/// # Safety
/// As for `Slot::read`, for every slot of `run` (one of a `PopIter`'s runs).
#[inline(always)]
unsafe fn fold_run<T: Copy, B, F: FnMut(B, T) -> B>(run: &[Slot<T>], init: B, f: &mut F) -> B {
    let mut acc = init;
    let (groups, rest) = run.as_chunks::<FOLD_GROUP>();
    for group in groups {
        // SAFETY: forwarded from the caller, for each slot of the group.
        for v in unsafe { read_array(group) } {
            acc = f(acc, v);
        }
    }
    for slot in rest {
        // SAFETY: forwarded from the caller.
        acc = f(acc, unsafe { slot.read() });
    }
    acc
}

/// Entries popped in place by [`Consumer::pop_iter`], yielded by value in ring order.
///
/// Each slot is read exactly once, when the iterator reaches it: one by one with a volatile read
/// (`next`), or, under internal iteration (`fold`, so `sum`, `for_each`, `count`, ...), eight at a
/// time into a private array followed by a compiler fence (see `sync::read_array`), which lets the
/// compiler vectorise the caller's loop. Either way the caller gets private copies: checking one
/// cannot be raced by the peer, and no reference into shared memory is handed out. Dropping the iterator pops exactly the entries it yielded (forgetting it
/// pops none).
pub struct PopIter<'c, 'a, I: RingIndex, T> {
    /// The run from the head to the end of the array.
    a: core::slice::Iter<'a, Slot<T>>,
    /// The run from the start of the array (empty unless the entries wrap).
    b: core::slice::Iter<'a, Slot<T>>,
    /// Entries the iterator started with.
    n: usize,
    consumer: &'c mut Consumer<'a, I, T>,
}

impl<I: RingIndex, T> PopIter<'_, '_, I, T> {
    /// Entries not yet yielded.
    #[inline(always)]
    fn left(&self) -> usize {
        self.a.len() + self.b.len()
    }
}

impl<I: RingIndex, T: Copy + FromBytes> Iterator for PopIter<'_, '_, I, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        let slot = match self.a.next() {
            Some(s) => s,
            None => self.b.next()?,
        };
        // SAFETY: the slot is one of the entries in [head, tail) as published by the producer and
        // observed with Acquire, and not yet handed back (the head moves only when we drop).
        Some(unsafe { slot.read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.left();
        (n, Some(n))
    }

    /// Internal iteration (`sum`, `for_each`, ...): one tight loop per run, the iterator's state
    /// left in registers. The entries count as popped once the loop is done (if `f` unwinds, none
    /// of them do).
    #[inline]
    fn fold<B, F: FnMut(B, T) -> B>(mut self, init: B, mut f: F) -> B {
        // Each run in its own loop (as `push_iter`): no array of runs to keep around the loops.
        // SAFETY: as in `next`, for each slot of both runs.
        let acc = unsafe { fold_run(self.a.as_slice(), init, &mut f) };
        let acc = if self.b.len() == 0 {
            acc
        } else {
            // SAFETY: as above.
            unsafe { fold_run(self.b.as_slice(), acc, &mut f) }
        };
        self.a = Default::default();
        self.b = Default::default();
        acc
    }
}

impl<I: RingIndex, T: Copy + FromBytes> ExactSizeIterator for PopIter<'_, '_, I, T> {}

impl<I: RingIndex, T> Drop for PopIter<'_, '_, I, T> {
    #[inline]
    fn drop(&mut self) {
        let taken = self.n - self.left();
        let c = &mut *self.consumer;
        c.local_head = c.local_head.add(taken as u64);
        if !c.cap.is_power_of_two() {
            // Fixed capacities keep the fast-path stop pinned to the head (see `set_stop`).
            c.stop = c.local_head;
        }
    }
}
