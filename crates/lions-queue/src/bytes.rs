// SPDX-License-Identifier: BSD-2-Clause
//! A ring of bytes in its own data region, moved in contiguous runs (the serial queue's ring; any
//! byte stream between two components can use it).
//!
//! ## Protocol
//!
//! - The ring is a `u32` `head` (written only by the consumer), a `u32` `tail` (written only by the
//!   producer), both in the caller's header, and a data region of `capacity` bytes; byte `i` lives
//!   at `i & (capacity - 1)`. Every byte is usable: full is `tail - head == capacity`.
//! - The capacity (the data region's length) is checked once, in [`ByteRing::new`]: a power of two
//!   up to 2^31. From then on a byte's place is `index & mask`, inside the data region whatever a
//!   peer wrote, so no access is bounds-checked again.
//! - The peer's index is read (Acquire) only when the cached view is short, and checked with one
//!   compare: the tail may only grow, by at most the room left past the head we published; the
//!   head may only grow, up to the tail we published. A bad index is a [`PeerError`]; the handle
//!   keeps its last good view.
//! - Our own index is stored (Release) once per batch: [`ByteProducer::publish`],
//!   [`ByteConsumer::release`].
//! - Bytes move with one copy per contiguous run: at most two for a slice, at most three for a
//!   ring-to-ring move ([`ByteConsumer::move_to`]); [`ByteConsumer::move_until`] copies while it
//!   scans for a stop byte. Bytes in the data region are never referenced as a Rust slice (the
//!   peer may write them): raw-pointer copies and volatile byte accesses only.
//!
//! Signalling is the caller's (the `signal` module): this is the ring alone.

use crate::capacity::{Capacity, CapacityError};
use crate::ring::{HandleError, IndexField, PeerError, PushError};
use crate::sync::{AtomicU32, Ordering};
use core::ptr::{self, NonNull};

/// One byte ring as both ends see it: the shared indices, the data region and its mask.
#[derive(Clone, Copy)]
pub struct ByteRing<'a> {
    head: &'a AtomicU32,
    tail: &'a AtomicU32,
    /// The data region: `mask + 1` bytes.
    data: NonNull<u8>,
    /// Capacity - 1; the capacity is a power of two up to 2^31, so `index & mask` is a byte of the
    /// data region.
    mask: u32,
    /// The capacity, `mask + 1` (kept: one add less on every check).
    cap: u32,
}

/// The most bytes in one ring (2^31) fit a `u32`; `usize` is at least 32 bits on our targets.
#[inline]
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> ByteRing<'a> {
    /// The ring of indices `head` and `tail` over the `len` bytes at `data`. `len` must be a power
    /// of two up to 2^31.
    ///
    /// # Safety
    /// The `len` bytes at `data` are mapped read-write for `'a` and shared with at most one peer;
    /// this process makes at most one producer and one consumer over the ring.
    pub unsafe fn new(
        head: &'a AtomicU32,
        tail: &'a AtomicU32,
        data: NonNull<u8>,
        len: usize,
    ) -> Result<Self, CapacityError> {
        Capacity::new::<u32>(len as u64)?;
        // 1 <= len <= 2^31 (checked): the mask fits a u32.
        Ok(Self {
            head,
            tail,
            data,
            mask: to_u32(len - 1),
            cap: to_u32(len),
        })
    }

    /// The capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.cap
    }

    /// The (head, tail) in shared memory now, refused when they hold more bytes than the capacity.
    fn indices(&self) -> Result<(u32, u32), HandleError> {
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.capacity() {
            return Err(HandleError::Peer(PeerError {
                field: IndexField::Tail,
                value: tail.into(),
                low: head.into(),
                high: head.wrapping_add(self.capacity()).into(),
            }));
        }
        Ok((head, tail))
    }

    /// The producing end, starting from the indices in shared memory.
    pub fn producer(self) -> Result<ByteProducer<'a>, HandleError> {
        let (head, tail) = self.indices()?;
        Ok(ByteProducer {
            ring: self,
            tail,
            shared_tail: tail,
            limit: head.wrapping_add(self.cap),
        })
    }

    /// The consuming end, starting from the indices in shared memory.
    pub fn consumer(self) -> Result<ByteConsumer<'a>, HandleError> {
        let (head, tail) = self.indices()?;
        Ok(ByteConsumer {
            ring: self,
            head,
            shared_head: head,
            tail,
        })
    }

    /// Pointer to the byte of ring index `index`.
    #[inline]
    fn at(&self, index: u32) -> *mut u8 {
        // SAFETY: `index & mask < capacity`, the data region's length: in bounds.
        unsafe { self.data.as_ptr().add((index & self.mask) as usize) }
    }

    /// Bytes from `index` to the end of the data region (at least 1).
    #[inline]
    fn run(&self, index: u32) -> u32 {
        self.capacity() - (index & self.mask)
    }

    /// Copy `n` bytes between ring index `index` and private memory at `buf`: into the ring when
    /// `inward`, out of it otherwise. One copy per contiguous run (at most two).
    ///
    /// # Safety
    /// `buf` is valid for `n <= capacity` bytes and private; we own the `n` ring bytes from
    /// `index` for that access (outside the consumer's `[head, tail)` to write, inside the
    /// published `[head, tail)` to read).
    #[inline]
    unsafe fn copy(&self, index: u32, buf: *mut u8, n: u32, inward: bool) {
        let first = n.min(self.run(index));
        let run = |ring: *mut u8, buf: *mut u8, k: u32| {
            let (src, dst) = if inward { (buf, ring) } else { (ring, buf) };
            // SAFETY: the run lies inside the data region (`run`) and inside `buf`; private and
            // shared memory do not overlap; the caller owns the bytes.
            unsafe { ptr::copy_nonoverlapping(src, dst, k as usize) };
        };
        run(self.at(index), buf, first);
        if first < n {
            // SAFETY: `first < n`: still inside `buf`.
            run(
                self.data.as_ptr(),
                unsafe { buf.add(first as usize) },
                n - first,
            );
        }
    }
}

/// Copy `n` bytes from ring `src` at index `from` to ring `dst` at index `to`: one copy per
/// contiguous run of both (at most three).
///
/// # Safety
/// We own the `n` bytes of `src` from `from` for reading and the `n` bytes of `dst` from `to` for
/// writing; `n` is at most either capacity.
#[inline]
unsafe fn copy_between(src: &ByteRing<'_>, from: u32, dst: &ByteRing<'_>, to: u32, n: u32) {
    let k = n.min(src.run(from)).min(dst.run(to));
    // SAFETY: `k` bytes from each pointer lie inside its region (`run`); the caller owns them.
    // `copy`, not `copy_nonoverlapping`: a (mis)configuration could map both rings' data at the
    // same place, which garbles bytes but must not be undefined behaviour.
    unsafe { ptr::copy(src.at(from), dst.at(to), k as usize) };
    if k < n {
        // SAFETY: forwarded from the caller, for the bytes after the first `k`.
        unsafe { copy_wrapped(src, from.wrapping_add(k), dst, to.wrapping_add(k), n - k) };
    }
}

/// The rest of a [`copy_between`] after one ring wrapped: at most two more runs.
///
/// # Safety
/// As for [`copy_between`].
#[inline(never)]
unsafe fn copy_wrapped(
    src: &ByteRing<'_>,
    mut from: u32,
    dst: &ByteRing<'_>,
    mut to: u32,
    mut n: u32,
) {
    while n > 0 {
        let k = n.min(src.run(from)).min(dst.run(to));
        // SAFETY: as in `copy_between`.
        unsafe { ptr::copy(src.at(from), dst.at(to), k as usize) };
        (from, to, n) = (from.wrapping_add(k), to.wrapping_add(k), n - k);
    }
}

/// The error for a tail `tail` that [`ByteConsumer::refresh`] refused, from the values it
/// checked (by value: the caller's handle does not escape, so its fields stay in registers).
#[cold]
#[inline(never)]
fn bad_tail(tail: u32, seen: u32, shared_head: u32, capacity: u32) -> PeerError {
    PeerError {
        field: IndexField::Tail,
        value: tail.into(),
        low: seen.into(),
        high: shared_head.wrapping_add(capacity).into(),
    }
}

/// The producing end of a byte ring: writes bytes and the tail.
pub struct ByteProducer<'a> {
    ring: ByteRing<'a>,
    /// Tail including staged bytes.
    tail: u32,
    /// Tail as last published.
    shared_tail: u32,
    /// Last validated head plus the capacity: the tail may go up to here.
    limit: u32,
}

impl ByteProducer<'_> {
    /// The capacity in bytes (every byte is usable).
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.ring.capacity().into()
    }

    /// Free bytes by the head we last saw (no re-read: the consumer may have freed more).
    #[inline]
    pub fn free_cached(&self) -> u32 {
        self.limit.wrapping_sub(self.tail)
    }

    /// Re-read the consumer's head (Acquire: its reads of the bytes it freed happen before our
    /// writes to them) and check it moved forward, not past our published tail.
    #[inline]
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        let head = self.ring.head.load(Ordering::Acquire);
        let old = self.limit.wrapping_sub(self.ring.capacity());
        if head.wrapping_sub(old) > self.shared_tail.wrapping_sub(old) {
            return Err(PeerError {
                field: IndexField::Head,
                value: head.into(),
                low: old.into(),
                high: self.shared_tail.into(),
            });
        }
        self.limit = head.wrapping_add(self.ring.capacity());
        Ok(())
    }

    /// Room for up to `want` bytes: the cached free space, re-read only when it is short. A peer
    /// error is returned only when there is no room at all.
    #[inline]
    pub fn room(&mut self, want: usize) -> Result<u32, PeerError> {
        let free = self.free_cached();
        if (free as usize) < want
            && let Err(e) = self.refresh()
            && free == 0
        {
            return Err(e);
        }
        Ok(self.free_cached())
    }

    /// Stage as many bytes of `bytes` as fit; returns how many. They become visible at the next
    /// [`publish`](Self::publish). A peer error is returned only when nothing could be staged.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, PeerError> {
        let n = (self.room(bytes.len())? as usize).min(bytes.len());
        // SAFETY: `bytes[..n]` is private; the `n <= free` bytes from our tail lie outside the
        // consumer's [head, tail), so it does not read them until we publish.
        unsafe {
            let src = bytes.as_ptr().cast_mut();
            self.ring.copy(self.tail, src, to_u32(n), true);
        }
        self.tail = self.tail.wrapping_add(to_u32(n));
        Ok(n)
    }

    /// Stage one byte.
    #[inline]
    pub fn push(&mut self, byte: u8) -> Result<(), PushError<u8>> {
        if self.free_cached() == 0 {
            self.refresh().map_err(|e| PushError::Peer(e, byte))?;
            if self.free_cached() == 0 {
                return Err(PushError::Full(byte));
            }
        }
        // SAFETY: a free byte (outside the consumer's [head, tail)), inside the data region.
        unsafe { self.ring.at(self.tail).write_volatile(byte) };
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Publish every staged byte with one Release store of the tail (our byte writes happen
    /// before the consumer's Acquire load sees it); returns how many.
    #[inline]
    pub fn publish(&mut self) -> u64 {
        let tail = self.tail;
        let n = tail.wrapping_sub(self.shared_tail);
        if n != 0 {
            self.ring.tail.store(tail, Ordering::Release);
            self.shared_tail = tail;
        }
        n.into()
    }

    /// Drop every staged byte (an aborted transfer).
    #[inline]
    pub fn abort(&mut self) {
        self.tail = self.shared_tail;
    }

    /// Free bytes now (re-reads the head).
    #[inline]
    pub fn free(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.free_cached().into())
    }
}

/// The consuming end of a byte ring: reads bytes and writes the head.
pub struct ByteConsumer<'a> {
    ring: ByteRing<'a>,
    /// Head including bytes read but not yet released.
    head: u32,
    /// Head as last published (never re-read from shared memory: the producer can write that
    /// word too).
    shared_head: u32,
    /// Last validated tail.
    tail: u32,
}

impl ByteConsumer<'_> {
    /// The capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.ring.capacity().into()
    }

    /// Unread bytes by the tail we last saw.
    #[inline]
    pub fn avail_cached(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    /// Re-read the producer's tail (Acquire: its byte writes happen before our reads) and check
    /// the length it implies lies between what we already saw and the capacity.
    #[inline]
    pub fn refresh(&mut self) -> Result<(), PeerError> {
        let tail = self.ring.tail.load(Ordering::Acquire);
        // `seen <= len <= capacity` as one compare: the tail grew by at most the room that was
        // left (`seen <= capacity` always holds, so the subtraction does not wrap).
        let seen = self.tail.wrapping_sub(self.shared_head);
        if tail.wrapping_sub(self.tail) > self.ring.capacity() - seen {
            return Err(bad_tail(
                tail,
                self.tail,
                self.shared_head,
                self.ring.capacity(),
            ));
        }
        self.tail = tail;
        Ok(())
    }

    /// [`refresh`](Self::refresh) as a yes or no, for a hot path that keeps no room for the
    /// error: false when the tail is refused (the handle keeps its last good view; a `refresh`
    /// then tells why, if the peer has not corrected it meanwhile).
    #[inline]
    pub fn try_refresh(&mut self) -> bool {
        let tail = self.ring.tail.load(Ordering::Acquire);
        let seen = self.tail.wrapping_sub(self.shared_head);
        if tail.wrapping_sub(self.tail) > self.ring.capacity() - seen {
            return false;
        }
        self.tail = tail;
        true
    }

    /// Up to `want` unread bytes: the cached count, re-read only when it is short. A peer error
    /// is returned only when nothing is available at all.
    #[inline]
    fn available(&mut self, want: usize) -> Result<u32, PeerError> {
        let avail = self.avail_cached();
        if (avail as usize) < want
            && let Err(e) = self.refresh()
            && avail == 0
        {
            return Err(e);
        }
        Ok(self.avail_cached())
    }

    /// Read up to `out.len()` published bytes; returns how many. Their slots go back to the
    /// producer at the next [`release`](Self::release). A peer error is returned only when nothing
    /// could be read.
    #[inline]
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, PeerError> {
        let n = (self.available(out.len())? as usize).min(out.len());
        // SAFETY: `out[..n]` is private; the `n` bytes from our head lie in [head, tail) as
        // published and observed with Acquire, so the producer does not write them until we
        // release past them.
        unsafe {
            self.ring
                .copy(self.head, out.as_mut_ptr(), to_u32(n), false)
        };
        self.head = self.head.wrapping_add(to_u32(n));
        Ok(n)
    }

    /// Read one byte.
    #[inline]
    pub fn pop(&mut self) -> Result<Option<u8>, PeerError> {
        if self.avail_cached() == 0 {
            self.refresh()?;
            if self.avail_cached() == 0 {
                return Ok(None);
            }
        }
        // SAFETY: an unread published byte, inside the data region. Volatile: a misbehaving peer
        // can only garble its own data.
        let b = unsafe { self.ring.at(self.head).read_volatile() };
        self.head = self.head.wrapping_add(1);
        Ok(Some(b))
    }

    /// Copy published bytes, starting `offset` bytes past the next unread one, into `out` without
    /// consuming them; returns how many (0 when fewer than `offset + 1` are available). For a
    /// consumer that must not take bytes it cannot pass on (a driver whose device FIFO is full).
    pub fn peek_at(&mut self, offset: usize, out: &mut [u8]) -> Result<usize, PeerError> {
        let avail = usize::try_from(self.len()?).unwrap_or(usize::MAX);
        let n = out.len().min(avail.saturating_sub(offset));
        if n > 0 {
            let from = self.head.wrapping_add(to_u32(offset));
            // SAFETY: `offset + n <= avail`: bytes in [head, tail) as published (see `read`).
            unsafe { self.ring.copy(from, out.as_mut_ptr(), to_u32(n), false) };
        }
        Ok(n)
    }

    /// The offset of the last `byte` among the first `within` unread bytes, if any (searched
    /// without consuming).
    pub fn rfind(&mut self, byte: u8, within: usize) -> Result<Option<usize>, PeerError> {
        let mut buf = [0u8; 64];
        let mut end = within;
        while end > 0 {
            let start = end.saturating_sub(buf.len());
            let got = self.peek_at(start, &mut buf[..end - start])?;
            if let Some(i) = buf[..got].iter().rposition(|&b| b == byte) {
                return Ok(Some(start + i));
            }
            end = start;
        }
        Ok(None)
    }

    /// Move unread bytes into `dst`'s staged bytes up to the first `stop` byte (not taken): at
    /// most what our cached view of the tail holds (re-read it first, with [`len`](Self::len)),
    /// and at most the room `dst` is known to have (no re-read: a caller that finds this short
    /// goes on with [`pop`](Self::pop) and [`ByteProducer::push`], which re-read). Scans as it
    /// copies, byte by byte, out of line (input that comes one byte at a time takes
    /// [`move_one`](Self::move_one) first). Returns how many moved.
    #[inline]
    pub fn move_until(&mut self, dst: &mut ByteProducer<'_>, stop: u8) -> usize {
        let k = self.avail_cached().min(dst.free_cached());
        self.move_until_n(dst, stop, k)
    }

    /// The common case of [`move_until`](Self::move_until) for input that comes a byte at a time
    /// (a UART interrupt per character), inline: when exactly one byte is unread by our cached
    /// view, `dst` is known to have room and the byte is not `stop`, move it and return true (the
    /// cached view is then empty); otherwise change nothing and return false.
    #[inline(always)]
    pub fn move_one(&mut self, dst: &mut ByteProducer<'_>, stop: u8) -> bool {
        if self.avail_cached() != 1 || dst.free_cached() == 0 {
            return false;
        }
        // SAFETY: `avail == 1`: an unread published byte of ours. Volatile: the peer may write it.
        let b = unsafe { self.ring.at(self.head).read_volatile() };
        if b == stop {
            return false;
        }
        // SAFETY: `free > 0`: a free byte of `dst`.
        unsafe { dst.ring.at(dst.tail).write_volatile(b) };
        self.head = self.head.wrapping_add(1);
        dst.tail = dst.tail.wrapping_add(1);
        true
    }

    /// [`move_until`](Self::move_until) for `k` bytes (at most what both cached views allow).
    #[inline(never)]
    fn move_until_n(&mut self, dst: &mut ByteProducer<'_>, stop: u8, k: u32) -> usize {
        let (src, dst_ring) = (self.ring, dst.ring);
        let (from, to) = (self.head, dst.tail);
        let mut i = 0;
        while i < k {
            // SAFETY: `i < k <= avail`: an unread published byte of ours, inside our data region.
            // Volatile: the peer may write it.
            let b = unsafe { src.at(from.wrapping_add(i)).read_volatile() };
            if b == stop {
                break;
            }
            // SAFETY: `i < k <= free`: a free byte of `dst`, inside its data region.
            unsafe { dst_ring.at(to.wrapping_add(i)).write_volatile(b) };
            i += 1;
        }
        self.head = from.wrapping_add(i);
        dst.tail = to.wrapping_add(i);
        i as usize
    }

    /// Move up to `n` unread bytes into `dst`'s staged bytes (for a component that consumes one
    /// ring and produces another): one copy per contiguous run of both rings, no bounce buffer;
    /// returns how many. It stops early when either side runs out (each re-reads the peer's index
    /// only when its cached view is short) or a peer index is impossible. Hand the bytes' slots
    /// back with [`release`](Self::release), publish them with [`ByteProducer::publish`].
    #[inline]
    pub fn move_to(&mut self, dst: &mut ByteProducer<'_>, n: usize) -> usize {
        // On a peer error, what the cached views allow still moves.
        let _ = self.available(n);
        let _ = dst.room(n);
        self.move_seen(dst, n)
    }

    /// [`move_to`](Self::move_to) by the cached views only (no re-read of either peer's index):
    /// for a caller that has just checked both sides.
    #[inline]
    pub fn move_seen(&mut self, dst: &mut ByteProducer<'_>, n: usize) -> usize {
        // `k <= avail`, which fits a u32.
        #[allow(clippy::cast_possible_truncation)]
        let k = (self.avail_cached().min(dst.free_cached()) as usize).min(n) as u32;
        // SAFETY: `k <= avail`: published bytes of ours, in [head, tail); `k <= free`: free bytes
        // of `dst`, outside its consumer's [head, tail).
        unsafe { copy_between(&self.ring, self.head, &dst.ring, dst.tail, k) };
        self.head = self.head.wrapping_add(k);
        dst.tail = dst.tail.wrapping_add(k);
        k as usize
    }

    /// Consume up to `n` bytes without copying them out; returns how many. A peer error is
    /// returned only when nothing is available.
    pub fn skip(&mut self, n: usize) -> Result<usize, PeerError> {
        let k = to_u32(n).min(self.available(n)?);
        self.head = self.head.wrapping_add(k);
        Ok(k as usize)
    }

    /// Hand every read slot back with one Release store of the head (our reads happen before the
    /// producer's Acquire load sees it); returns how many.
    #[inline]
    pub fn release(&mut self) -> u64 {
        let head = self.head;
        let n = head.wrapping_sub(self.shared_head);
        if n != 0 {
            self.ring.head.store(head, Ordering::Release);
            self.shared_head = head;
        }
        n.into()
    }

    /// Bytes available now (re-reads the tail).
    #[inline]
    pub fn len(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.avail_cached().into())
    }

    /// Whether nothing is available now (re-reads the tail).
    #[inline]
    pub fn is_empty(&mut self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Two indices and a data region of `N` bytes.
    struct Mem<const N: usize> {
        head: AtomicU32,
        tail: AtomicU32,
        data: core::cell::UnsafeCell<[u8; N]>,
    }

    impl<const N: usize> Mem<N> {
        fn at(start: u32) -> Self {
            Self {
                head: AtomicU32::new(start),
                tail: AtomicU32::new(start),
                data: core::cell::UnsafeCell::new([0; N]),
            }
        }

        fn ring(&self) -> ByteRing<'_> {
            let data = NonNull::new(self.data.get().cast()).unwrap();
            // SAFETY: `data` lives as long as the borrow; each test makes one handle per role.
            unsafe { ByteRing::new(&self.head, &self.tail, data, N) }.unwrap()
        }
    }

    #[test]
    fn capacity_is_checked_once() {
        let (h, t) = (AtomicU32::new(0), AtomicU32::new(0));
        let mut d = [0u8; 48];
        let p = NonNull::new(d.as_mut_ptr()).unwrap();
        // SAFETY: fails before any access.
        let e = unsafe { ByteRing::new(&h, &t, p, 48) }.err();
        assert_eq!(e, Some(CapacityError::NotPowerOfTwo(48)));
        // SAFETY: as above.
        let e = unsafe { ByteRing::new(&h, &t, p, 0) }.err();
        assert_eq!(e, Some(CapacityError::Zero));
        t.store(17, Ordering::Relaxed);
        // SAFETY: `p` is 48 bytes; the ring uses 16.
        let ring = unsafe { ByteRing::new(&h, &t, p, 16) }.unwrap();
        assert!(
            matches!(ring.consumer(), Err(HandleError::Peer(_))),
            "17 bytes in 16"
        );
    }

    #[test]
    fn runs_wrap_in_index_and_in_region() {
        let m = Mem::<8>::at(u32::MAX - 2);
        let ring = m.ring();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut out = [0u8; 8];
        for round in 0..4u8 {
            let msg = [round, round + 1, round + 2, round + 3, round + 4, round + 5];
            assert_eq!(tx.write(&msg).unwrap(), 6);
            assert_eq!(tx.write(&msg).unwrap(), 2, "only what fits");
            assert_eq!(tx.publish(), 8);
            assert_eq!(rx.len().unwrap(), 8);
            assert_eq!(rx.read(&mut out).unwrap(), 8);
            assert_eq!(out[..6], msg);
            assert_eq!(out[6..], msg[..2]);
            assert_eq!(rx.release(), 8);
            assert_eq!(tx.free().unwrap(), 8);
        }
    }

    #[test]
    fn move_one_takes_exactly_one_byte_or_nothing() {
        let a = Mem::<16>::at(u32::MAX);
        let b = Mem::<2>::at(u32::MAX);
        let (src_ring, dst_ring) = (a.ring(), b.ring());
        let (mut src_tx, mut src) = (src_ring.producer().unwrap(), src_ring.consumer().unwrap());
        let (mut dst, mut dst_rx) = (dst_ring.producer().unwrap(), dst_ring.consumer().unwrap());
        assert!(!src.move_one(&mut dst, b'|'), "nothing available");
        src_tx.write(b"xy").unwrap();
        src_tx.publish();
        assert!(src.try_refresh());
        assert!(
            !src.move_one(&mut dst, b'|'),
            "two available: not the one-byte case"
        );
        assert_eq!(src.read(&mut [0u8; 1]).unwrap(), 1);
        assert!(src.move_one(&mut dst, b'|'), "across the index wrap");
        assert_eq!(src.avail_cached(), 0);
        src_tx.write(b"|").unwrap();
        src_tx.publish();
        assert!(src.try_refresh());
        assert!(!src.move_one(&mut dst, b'|'), "the stop byte stays");
        assert_eq!(src.avail_cached(), 1);
        assert_eq!(src.pop().unwrap(), Some(b'|'));
        src_tx.write(b"zw").unwrap();
        src_tx.publish();
        assert!(src.try_refresh());
        assert_eq!(src.read(&mut [0u8; 1]).unwrap(), 1);
        dst.write(b"q").unwrap();
        assert!(!src.move_one(&mut dst, b'|'), "no room in `dst`");
        assert_eq!(src.avail_cached(), 1);
        dst.publish();
        let mut out = [0u8; 2];
        assert_eq!(dst_rx.read(&mut out).unwrap(), 2);
        assert_eq!(&out, b"yq");
    }

    #[test]
    fn try_refresh_refuses_what_refresh_refuses() {
        let m = Mem::<8>::at(5);
        let ring = m.ring();
        let mut rx = ring.consumer().unwrap();
        m.tail.store(5 + 9, Ordering::Relaxed);
        assert!(!rx.try_refresh(), "9 bytes in 8");
        assert_eq!(rx.avail_cached(), 0, "the last good view stays");
        assert_eq!(rx.refresh().unwrap_err().field, IndexField::Tail);
        m.tail.store(5 + 8, Ordering::Relaxed);
        assert!(rx.try_refresh());
        assert_eq!(rx.avail_cached(), 8);
        m.tail.store(5 + 7, Ordering::Relaxed);
        assert!(!rx.try_refresh(), "the tail moved back");
        assert!(rx.refresh().is_err());
        assert_eq!(rx.avail_cached(), 8);
    }

    #[test]
    fn move_until_stops_at_the_byte_the_room_and_the_input() {
        let a = Mem::<16>::at(14);
        let b = Mem::<4>::at(3);
        let (src_ring, dst_ring) = (a.ring(), b.ring());
        let (mut src_tx, mut src) = (src_ring.producer().unwrap(), src_ring.consumer().unwrap());
        let (mut dst, mut dst_rx) = (dst_ring.producer().unwrap(), dst_ring.consumer().unwrap());
        src_tx.write(b"abc|defgh").unwrap();
        src_tx.publish();
        assert_eq!(src.move_until(&mut dst, b'|'), 0, "the tail is not re-read");
        assert_eq!(src.len().unwrap(), 9);
        assert_eq!(src.move_until(&mut dst, b'|'), 3, "up to the stop byte");
        assert_eq!(src.pop().unwrap(), Some(b'|'));
        assert_eq!(src.move_until(&mut dst, b'|'), 1, "up to the room in `dst`");
        dst.publish();
        let mut out = [0; 4];
        assert_eq!(dst_rx.read(&mut out).unwrap(), 4);
        assert_eq!(&out, b"abcd");
        dst_rx.release();
        assert_eq!(src.move_until(&mut dst, b'|'), 0, "room by the cached view");
        dst.free().unwrap();
        assert_eq!(src.move_until(&mut dst, b'|'), 4, "room re-read");
        assert_eq!(src.move_to(&mut dst, 8), 0, "`dst` full");
        src.release();
        // A consumer that claims to have read past the published tail is refused.
        b.head.store(100, Ordering::Relaxed);
        assert_eq!(dst.refresh().unwrap_err().field, IndexField::Head);
    }
}
