// SPDX-License-Identifier: BSD-2-Clause
//! The serial queue wire format (`serial_queue_t`) and its two role handles.
//!
//! A [`SerialProducer`] writes bytes and the tail, a [`SerialConsumer`] reads bytes and writes the
//! head; both follow the serial notification rule over `producer_signalled`: the producer always
//! notifies; the consumer notifies only when the producer asked (the producer's half is the
//! [`Signal`] of `lions_queue::signal`; the consumer's half, a SeqCst fence, a load and a store, is
//! written out in [`SerialConsumer::should_notify`] so it inlines into every virt event).
//!
//! The handles own the byte ring itself (a `u32`-indexed ring of bytes is small enough to keep
//! here, next to its one wire layout), so the hot paths are plain arithmetic:
//!
//! - The capacity (the data region's size) is checked once when a handle is made: a power of two
//!   up to 2^31. From then on a byte's place is `index & mask`, always inside the data region,
//!   whatever a peer wrote.
//! - The peer's index is read (Acquire) only when the cached view is short, and checked once per
//!   read with two subtractions and a compare: the producer's tail may only grow, by at most the
//!   capacity past our head; the consumer's head may only grow, up to our published tail. A bad
//!   index is a [`PeerError`]; the handle keeps its last good view.
//! - Bytes move with one copy per contiguous run: at most two runs for a slice, at most three for
//!   a ring-to-ring move ([`SerialConsumer::move_to`], the Tx virt's data path); input is copied
//!   while scanned for the switch character ([`SerialConsumer::move_until`]). Bytes in the
//!   shared data region are never referenced as a Rust slice (a peer may write them); they are
//!   copied with raw-pointer copies, and scanned with volatile reads.

use crate::config::SerialConnectionResource;
use core::ptr::{self, NonNull};
use core::sync::atomic::{Ordering, fence};
use lions_os::{Channel, MAX_CLIENTS};
use lions_queue::atomic::AtomicU32;
use lions_queue::signal::{SIGNAL_NOT_REQUESTED, SIGNAL_REQUESTED, park_with};
use lions_queue::{
    Capacity, HandleError, IndexField, PeerError, PushError, QueueHeader, QueueMemory, RegionError,
    Signal,
};

/// `serial_queue_t` (12 B), at the start of the queue region. The bytes live in the connection's
/// separate data region.
#[repr(C)]
pub struct SerialQueue {
    /// Producer-owned index: one past the last published byte (offset 0).
    pub tail: AtomicU32,
    /// Consumer-owned index: the next byte to read (offset 4).
    pub head: AtomicU32,
    /// Signal flag (offset 8): 0 = "the producer waits for space, signal it", 1 = no signal needed.
    /// A zero-filled region starts as "requested"; [`SerialProducer::new`] withdraws that.
    pub producer_signalled: AtomicU32,
}

// SAFETY: `head` and `tail` return fields of `self`; the entries live in a separate region, so the
// offset is unused, and 0 is a multiple of `align_of::<u8>()`.
unsafe impl QueueHeader for SerialQueue {
    type Index = u32;
    type Entry = u8;
    const ENTRIES_OFFSET: usize = 0;

    fn head(&self) -> &AtomicU32 {
        &self.head
    }

    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

/// Why a serial queue handle could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialQueueError {
    /// A region of the connection is not mapped in this component (vaddr 0) or does not fit the
    /// address space.
    Unmapped,
    /// A region is too small or misaligned, or the data size is not a valid capacity (zero, not a
    /// power of two, above 2^31).
    Region(RegionError),
    /// The indices already in the header are inconsistent.
    Handle(HandleError),
    /// The connection's channel id is not a Microkit channel (above 61).
    Channel(u8),
}

impl core::fmt::Display for SerialQueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unmapped => write!(f, "serial queue region is not mapped"),
            Self::Region(e) => e.fmt(f),
            Self::Handle(e) => e.fmt(f),
            Self::Channel(id) => write!(f, "serial connection channel id {id} is above 61"),
        }
    }
}

impl core::error::Error for SerialQueueError {}

/// The header and data memory of one queue, checked: header region at least 12 B, capacity = the
/// whole data region (a power of two).
///
/// # Safety
/// As for [`QueueMemory::separate`]: both regions are mapped read-write for `'a`, shared with at most
/// one peer, and this process makes at most one handle of each role over them.
unsafe fn memory<'a>(
    queue: NonNull<u8>,
    queue_len: usize,
    data: NonNull<u8>,
    data_len: usize,
) -> Result<QueueMemory<'a, SerialQueue>, SerialQueueError> {
    let needed = size_of::<SerialQueue>();
    if queue_len < needed {
        return Err(SerialQueueError::Region(RegionError::TooSmall {
            needed,
            have: queue_len,
        }));
    }
    let cap = Capacity::new::<u32>(data_len as u64)
        .map_err(|e| SerialQueueError::Region(RegionError::Capacity(e)))?;
    // SAFETY: forwarded from the caller; the header region holds a whole `SerialQueue`.
    unsafe { QueueMemory::separate(queue.cast(), data, data_len, cap) }
        .map_err(SerialQueueError::Region)
}

/// The (queue, data) regions of a connection as pointers and lengths in this address space.
fn regions(
    conn: &SerialConnectionResource,
) -> Result<(NonNull<u8>, usize, NonNull<u8>, usize), SerialQueueError> {
    let (q, ql) = conn
        .queue
        .as_raw_parts()
        .ok_or(SerialQueueError::Unmapped)?;
    let (d, dl) = conn.data.as_raw_parts().ok_or(SerialQueueError::Unmapped)?;
    Ok((q, ql, d, dl))
}

impl SerialConnectionResource {
    /// The channel to the peer at the other end of this connection.
    pub fn channel(&self) -> Result<Channel, SerialQueueError> {
        Channel::try_new(self.id).ok_or(SerialQueueError::Channel(self.id))
    }
}

/// A virtualiser's client queue handles with their channels, `None` where there is none.
pub(crate) type ClientQueues<T> = [Option<(T, Channel)>; MAX_CLIENTS];

/// One queue handle per client connection of a virtualiser, with its channel. A client whose queue
/// already holds inconsistent indices gets no handle and its bit (bit i = client i) in the
/// returned mask, to be treated as faulty; any other bad connection is an error.
///
/// # Safety
/// `make` is called on each connection: its safety conditions must hold for all of them.
pub(crate) unsafe fn client_queues<'c, T>(
    conns: impl Iterator<Item = &'c SerialConnectionResource>,
    make: unsafe fn(&SerialConnectionResource) -> Result<T, SerialQueueError>,
) -> Result<(ClientQueues<T>, u64), SerialQueueError> {
    let mut queues = [const { None }; MAX_CLIENTS];
    let mut faulty = 0;
    for ((slot, conn), i) in queues.iter_mut().zip(conns).zip(0..) {
        // SAFETY: forwarded from the caller.
        match unsafe { make(conn) } {
            Ok(q) => *slot = Some((q, conn.channel()?)),
            Err(SerialQueueError::Handle(_)) => faulty |= 1 << i,
            Err(e) => return Err(e),
        }
    }
    Ok((queues, faulty))
}

/// One serial ring as a handle sees it: the shared header, the data region and the capacity.
#[derive(Clone, Copy)]
struct Ring<'a> {
    header: &'a SerialQueue,
    /// The data region: `mask + 1` bytes.
    data: NonNull<u8>,
    /// Capacity - 1. The capacity is a power of two up to 2^31 (checked in `memory`), so every
    /// `index & mask` is a byte of the data region and `mask + 1` does not overflow.
    mask: u32,
}

/// The most bytes in one ring (2^31) fit a `u32`; `usize` is at least 32 bits on our targets.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> Ring<'a> {
    /// The ring over checked regions, and the (head, tail) it holds now. Indices that no producer
    /// could have written (more bytes than the capacity) are a [`HandleError`].
    ///
    /// # Safety
    /// As for [`memory`].
    unsafe fn new(
        queue: NonNull<u8>,
        queue_len: usize,
        data: NonNull<u8>,
        data_len: usize,
    ) -> Result<(Self, u32, u32), SerialQueueError> {
        // SAFETY: forwarded from the caller.
        let mem = unsafe { memory(queue, queue_len, data, data_len) }?;
        let header = mem.header();
        // `memory` checked the capacity: a power of two up to 2^31, so `data_len - 1` fits a u32.
        let ring = Self {
            header,
            data,
            mask: to_u32(data_len - 1),
        };
        let tail = header.tail.load(Ordering::Acquire);
        let head = header.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > ring.capacity() {
            return Err(SerialQueueError::Handle(HandleError::Peer(PeerError {
                field: IndexField::Tail,
                value: tail.into(),
                low: head.into(),
                high: head.wrapping_add(ring.capacity()).into(),
            })));
        }
        Ok((ring, head, tail))
    }

    fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// Pointer to the byte of ring index `index`.
    fn at(&self, index: u32) -> *mut u8 {
        // SAFETY: `index & mask < capacity`, the data region's length: in bounds.
        unsafe { self.data.as_ptr().add((index & self.mask) as usize) }
    }

    /// Bytes from `index` to the end of the data region (at least 1).
    fn run(&self, index: u32) -> u32 {
        self.capacity() - (index & self.mask)
    }

    /// Copy `src` into the ring from `index`: one copy per contiguous run (at most two).
    ///
    /// # Safety
    /// We own the `src.len() <= capacity` bytes from `index` for writing (outside the consumer's
    /// `[head, tail)`).
    unsafe fn copy_in(&self, index: u32, src: &[u8]) {
        let n = to_u32(src.len());
        let first = n.min(self.run(index));
        // SAFETY: `first` bytes from `at(index)` and `n - first` from the start of the data
        // region lie inside it; `src` is private memory, so the ranges do not overlap; the caller
        // owns the bytes.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), self.at(index), first as usize);
            if first < n {
                ptr::copy_nonoverlapping(
                    src.as_ptr().add(first as usize),
                    self.data.as_ptr(),
                    (n - first) as usize,
                );
            }
        }
    }

    /// Copy ring bytes from `index` into `out`: one copy per contiguous run (at most two).
    ///
    /// # Safety
    /// We own the `out.len() <= capacity` bytes from `index` for reading (inside the producer's
    /// published `[head, tail)`).
    unsafe fn copy_out(&self, index: u32, out: &mut [u8]) {
        let n = to_u32(out.len());
        let first = n.min(self.run(index));
        // SAFETY: as in `copy_in`, reading into private memory.
        unsafe {
            ptr::copy_nonoverlapping(self.at(index), out.as_mut_ptr(), first as usize);
            if first < n {
                ptr::copy_nonoverlapping(
                    self.data.as_ptr(),
                    out.as_mut_ptr().add(first as usize),
                    (n - first) as usize,
                );
            }
        }
    }
}

/// Copy `n` bytes from ring `src` at index `from` to ring `dst` at index `to`: one copy per
/// contiguous run of both (at most three).
///
/// # Safety
/// We own the `n` bytes of `src` from `from` for reading and the `n` bytes of `dst` from `to` for
/// writing; `n` is at most either capacity.
unsafe fn copy_between(src: &Ring<'_>, from: u32, dst: &Ring<'_>, to: u32, n: u32) {
    let k = n.min(src.run(from)).min(dst.run(to));
    // SAFETY: `k` bytes from each pointer lie inside its region (`run`); the caller owns them.
    // `copy`, not `copy_nonoverlapping`: a (mis)configuration could map both rings' data at the
    // same place, which garbles bytes but must not be undefined behaviour.
    unsafe { ptr::copy(src.at(from), dst.at(to), k as usize) };
    if k < n {
        // One ring wraps inside the move: the rest, in at most two more runs.
        // SAFETY: forwarded from the caller, for the bytes after the first `k`.
        unsafe { copy_wrapped(src, from.wrapping_add(k), dst, to.wrapping_add(k), n - k) };
    }
}

/// The rest of a [`copy_between`] after a wrap.
///
/// # Safety
/// As for [`copy_between`].
#[inline(never)]
unsafe fn copy_wrapped(src: &Ring<'_>, mut from: u32, dst: &Ring<'_>, mut to: u32, mut n: u32) {
    while n > 0 {
        let k = n.min(src.run(from)).min(dst.run(to));
        // SAFETY: as in `copy_between`.
        unsafe { ptr::copy(src.at(from), dst.at(to), k as usize) };
        (from, to, n) = (from.wrapping_add(k), to.wrapping_add(k), n - k);
    }
}

/// The producing end of a serial queue (a client's Tx, the driver's Rx, a virt's side toward the
/// driver on Tx and toward clients on Rx).
pub struct SerialProducer<'a> {
    ring: Ring<'a>,
    signal: Signal<'a>,
    /// Tail including staged bytes.
    tail: u32,
    /// Tail as last published.
    shared_tail: u32,
    /// Last validated head.
    head: u32,
}

impl<'a> SerialProducer<'a> {
    /// Producer over a queue header at `queue` and the byte array at `data` (capacity `data_len`).
    /// Withdraws any signal request left in the header (this producer is not waiting yet).
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a` and shared with at most one peer; no other
    /// producer of this queue exists in this or any other process while the handle lives.
    pub unsafe fn new(
        queue: NonNull<u8>,
        queue_len: usize,
        data: NonNull<u8>,
        data_len: usize,
    ) -> Result<Self, SerialQueueError> {
        // SAFETY: forwarded from the caller.
        let (ring, head, tail) = unsafe { Ring::new(queue, queue_len, data, data_len) }?;
        let signal = Signal::new(&ring.header.producer_signalled);
        // A new producer is not waiting: withdraw a stale request (a zero-filled region reads as
        // "requested"), so the consumer does not send a notification nobody asked for.
        signal.cancel();
        Ok(Self {
            ring,
            signal,
            tail,
            shared_tail: tail,
            head,
        })
    }

    /// Producer over a connection from this component's config (its vaddrs are our mappings).
    ///
    /// # Safety
    /// The connection describes regions mapped at its vaddrs in this component for `'a`, and the
    /// rest of [`new`](Self::new) holds.
    pub unsafe fn from_connection(
        conn: &SerialConnectionResource,
    ) -> Result<Self, SerialQueueError> {
        let (q, ql, d, dl) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, d, dl) }
    }

    /// The capacity in bytes (every byte is usable).
    pub fn capacity(&self) -> u64 {
        self.ring.capacity().into()
    }

    /// Free bytes by the head we last saw (no re-read: the consumer may have freed more).
    pub(crate) fn free_cached(&self) -> u32 {
        self.ring.capacity() - self.tail.wrapping_sub(self.head)
    }

    /// Re-read the consumer's head (Acquire: its reads of the bytes it freed happen before our
    /// writes to them) and check it moved forward, not past our published tail.
    fn refresh(&mut self) -> Result<(), PeerError> {
        let head = self.ring.header.head.load(Ordering::Acquire);
        if head.wrapping_sub(self.head) > self.shared_tail.wrapping_sub(self.head) {
            return Err(PeerError {
                field: IndexField::Head,
                value: head.into(),
                low: self.head.into(),
                high: self.shared_tail.into(),
            });
        }
        self.head = head;
        Ok(())
    }

    /// Room for up to `want` bytes: the cached free space, re-read only when it is short. A peer
    /// error is returned only when there is no room at all.
    fn room(&mut self, want: usize) -> Result<u32, PeerError> {
        let free = self.free_cached();
        if (free as usize) < want
            && let Err(e) = self.refresh()
            && free == 0
        {
            return Err(e);
        }
        Ok(self.free_cached())
    }

    /// Re-read the head out of line, ignoring a peer error (the cached room still counts).
    #[cold]
    #[inline(never)]
    fn room_cold(&mut self) -> u32 {
        let _ = self.refresh();
        self.free_cached()
    }

    /// Stage as many bytes of `bytes` as fit; returns how many. They become visible at the next
    /// [`publish`](Self::publish). A peer error is returned only when nothing could be staged.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, PeerError> {
        let n = (self.room(bytes.len())? as usize).min(bytes.len());
        // SAFETY: the `n <= free` bytes from our tail lie outside the consumer's [head, tail), so
        // it does not read them until we publish.
        unsafe { self.ring.copy_in(self.tail, &bytes[..n]) };
        self.tail = self.tail.wrapping_add(to_u32(n));
        Ok(n)
    }

    /// Stage one byte.
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
    pub fn publish(&mut self) -> u64 {
        let n = self.tail.wrapping_sub(self.shared_tail);
        if n != 0 {
            self.ring.header.tail.store(self.tail, Ordering::Release);
            self.shared_tail = self.tail;
        }
        n.into()
    }

    /// Drop every staged byte (an aborted transfer).
    pub fn abort(&mut self) {
        self.tail = self.shared_tail;
    }

    /// Free bytes now (re-reads the head).
    pub fn free(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.free_cached().into())
    }

    /// The notification rule, producer side: after publishing, **always** notify the consumer if
    /// anything was published.
    pub fn should_notify(&self, published: u64) -> bool {
        published > 0
    }

    /// The queue is full and we want to wait for space: ask the consumer for a signal
    /// (`producer_signalled = 0`, SeqCst fence), then re-check. `Ok(true)`: space appeared
    /// meanwhile (the request is withdrawn), keep writing. `Ok(false)`: sleep; the consumer will
    /// notify once it frees space.
    pub fn park(&mut self) -> Result<bool, PeerError> {
        self.park_for(1)
    }

    /// [`park`](Self::park) for a batch: wait until at least `needed` bytes are free. `Ok(true)`:
    /// they are now (the request is withdrawn).
    pub fn park_for(&mut self, needed: u64) -> Result<bool, PeerError> {
        park_with(self.signal, || self.free().map(|n| n >= needed))
    }
}

/// The consuming end of a serial queue (the driver's Tx, a client's Rx, a virt's side toward
/// clients on Tx and toward the driver on Rx).
pub struct SerialConsumer<'a> {
    ring: Ring<'a>,
    /// Head including bytes read but not yet released.
    head: u32,
    /// Head as last published (never re-read from shared memory: the producer can write that
    /// word too).
    shared_head: u32,
    /// Last validated tail.
    tail: u32,
}

impl<'a> SerialConsumer<'a> {
    /// Consumer over a queue header at `queue` and the byte array at `data` (capacity `data_len`).
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a` and shared with at most one peer; no other
    /// consumer of this queue exists in this or any other process while the handle lives.
    pub unsafe fn new(
        queue: NonNull<u8>,
        queue_len: usize,
        data: NonNull<u8>,
        data_len: usize,
    ) -> Result<Self, SerialQueueError> {
        // SAFETY: forwarded from the caller.
        let (ring, head, tail) = unsafe { Ring::new(queue, queue_len, data, data_len) }?;
        Ok(Self {
            ring,
            head,
            shared_head: head,
            tail,
        })
    }

    /// Consumer over a connection from this component's config.
    ///
    /// # Safety
    /// As for [`SerialProducer::from_connection`], with the consumer role.
    pub unsafe fn from_connection(
        conn: &SerialConnectionResource,
    ) -> Result<Self, SerialQueueError> {
        let (q, ql, d, dl) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, d, dl) }
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity().into()
    }

    /// Unread bytes by the tail we last saw.
    fn avail_cached(&self) -> u32 {
        self.tail.wrapping_sub(self.head)
    }

    /// Re-read the producer's tail (Acquire: its byte writes happen before our reads) and check
    /// the length it implies lies between what we already saw and the capacity.
    fn refresh(&mut self) -> Result<(), PeerError> {
        let tail = self.ring.header.tail.load(Ordering::Acquire);
        // `seen <= len <= capacity` as one compare: the tail grew by at most the room that was
        // left (`seen <= capacity` always holds, so the subtraction does not wrap).
        let seen = self.tail.wrapping_sub(self.shared_head);
        if tail.wrapping_sub(self.tail) > self.ring.capacity() - seen {
            return Err(PeerError {
                field: IndexField::Tail,
                value: tail.into(),
                low: self.tail.into(),
                high: self.shared_head.wrapping_add(self.ring.capacity()).into(),
            });
        }
        self.tail = tail;
        Ok(())
    }

    /// Up to `want` unread bytes: the cached count, re-read only when it is short. A peer error
    /// is returned only when nothing is available at all.
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

    /// Read up to `out.len()` published bytes; returns how many. Their slots go back to the producer
    /// at the next [`release`](Self::release). A peer error is returned only when nothing could
    /// be read.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, PeerError> {
        let n = (self.available(out.len())? as usize).min(out.len());
        // SAFETY: the `n` bytes from our head lie in [head, tail) as published and observed with
        // Acquire, so the producer does not write them until we release past them.
        unsafe { self.ring.copy_out(self.head, &mut out[..n]) };
        self.head = self.head.wrapping_add(to_u32(n));
        Ok(n)
    }

    /// Read one byte.
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
            // SAFETY: `offset + n <= avail`: bytes in [head, tail) as published (see `read`).
            unsafe {
                let from = self.head.wrapping_add(to_u32(offset));
                self.ring.copy_out(from, &mut out[..n]);
            }
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

    /// Move unread bytes into `dst`'s staged bytes up to the first `stop` byte (not taken), at
    /// most `n`, at most what our cached view of the tail holds (re-read it first, with
    /// [`len`](Self::len)), and at most the room `dst` has (its head re-read when the cached view
    /// is short; on a peer error the cached room still counts). Byte by byte, scanning as it
    /// copies: input comes a few bytes at a time. Returns how many moved.
    #[inline]
    pub fn move_until(&mut self, dst: &mut SerialProducer<'_>, n: usize, stop: u8) -> usize {
        let mut room = dst.free_cached();
        if (room as usize) < n {
            room = dst.room_cold();
        }
        // `k <= avail`, which fits a u32.
        #[allow(clippy::cast_possible_truncation)]
        let k = (self.avail_cached().min(room) as usize).min(n) as u32;
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

    /// Move up to `n` unread bytes into `dst`'s staged bytes (sDDF's `serial_transfer_all`, for a
    /// component that consumes one queue and produces another): one copy per contiguous run of
    /// both rings, no bounce buffer; returns how many. It stops early when either side runs out
    /// (each re-reads the peer's index only when its cached view is short) or a peer index is
    /// impossible. The bytes moved are read here; hand their slots back with
    /// [`release`](Self::release) and publish them with [`SerialProducer::publish`].
    #[inline]
    pub fn move_to(&mut self, dst: &mut SerialProducer<'_>, n: usize) -> usize {
        // Re-read the peers' indices only when the cached views are short; on a peer error, what
        // the cached views allow still moves.
        let _ = self.available(n);
        let _ = dst.room(n);
        self.move_seen(dst, n)
    }

    /// [`move_to`](Self::move_to) by the cached views only (no re-read of either peer's index):
    /// for a caller that has just checked both sides.
    #[inline]
    pub(crate) fn move_seen(&mut self, dst: &mut SerialProducer<'_>, n: usize) -> usize {
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
    pub fn release(&mut self) -> u64 {
        let n = self.head.wrapping_sub(self.shared_head);
        if n != 0 {
            self.ring.header.head.store(self.head, Ordering::Release);
            self.shared_head = self.head;
        }
        n.into()
    }

    /// Bytes available now (re-reads the tail).
    pub fn len(&mut self) -> Result<u64, PeerError> {
        self.refresh()?;
        Ok(self.avail_cached().into())
    }

    /// Whether nothing is available now (re-reads the tail).
    pub fn is_empty(&mut self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }

    /// The notification rule, consumer side: notify the producer only if we freed space
    /// (`did_work`) **and** it asked; a `true` answer also withdraws its request, so one request
    /// gets one notification.
    pub fn should_notify(&self, did_work: bool) -> bool {
        // Inline here (the hot path of every virt event): the notifier's half of
        // `lions_queue::signal`, a SeqCst fence between our index store and the flag load.
        if !did_work {
            return false;
        }
        fence(Ordering::SeqCst);
        let flag = &self.ring.header.producer_signalled;
        if flag.load(Ordering::Relaxed) != SIGNAL_REQUESTED {
            return false;
        }
        flag.store(SIGNAL_NOT_REQUESTED, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use core::mem::offset_of;
    use core::sync::atomic::Ordering;
    use lions_os::RegionResource;
    use lions_queue::{CapacityError, IndexField};

    #[test]
    fn header_layout_matches_c() {
        // Three u32s, natural alignment 4, no padding.
        assert_eq!(size_of::<SerialQueue>(), 12);
        assert_eq!(align_of::<SerialQueue>(), 4);
        assert_eq!(offset_of!(SerialQueue, tail), 0);
        assert_eq!(offset_of!(SerialQueue, head), 4);
        assert_eq!(offset_of!(SerialQueue, producer_signalled), 8);
    }

    /// Owned, 8-aligned stand-ins for the queue and data regions.
    struct Regions {
        queue: Vec<u64>,
        data: Vec<u64>,
    }

    impl Regions {
        fn new(data_len: usize) -> Self {
            Self {
                queue: vec![0; 512],
                data: vec![0; data_len.div_ceil(8)],
            }
        }

        fn header(&self) -> &SerialQueue {
            // SAFETY: the buffer is 8-aligned, larger than the header, and all-zero is valid.
            unsafe { &*self.queue.as_ptr().cast::<SerialQueue>() }
        }

        fn ptrs(&mut self) -> (NonNull<u8>, NonNull<u8>) {
            (
                NonNull::new(self.queue.as_mut_ptr().cast()).unwrap(),
                NonNull::new(self.data.as_mut_ptr().cast()).unwrap(),
            )
        }

        fn pair(&mut self, data_len: usize) -> (SerialProducer<'static>, SerialConsumer<'static>) {
            let (q, d) = self.ptrs();
            // SAFETY: the buffers outlive every handle in each test, one handle per role.
            unsafe {
                (
                    SerialProducer::new(q, 4096, d, data_len).unwrap(),
                    SerialConsumer::new(q, 4096, d, data_len).unwrap(),
                )
            }
        }
    }

    #[test]
    fn round_trip_through_the_data_region() {
        let mut r = Regions::new(16);
        let (mut tx, mut rx) = r.pair(16);
        assert_eq!(tx.write(b"hello").unwrap(), 5);
        assert_eq!(rx.len().unwrap(), 0, "staged bytes are invisible");
        assert_eq!(tx.publish(), 5);
        assert_eq!(r.header().tail.load(Ordering::Relaxed), 5);
        let mut out = [0; 8];
        assert_eq!(rx.read(&mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"hello");
        assert_eq!(
            r.header().head.load(Ordering::Relaxed),
            0,
            "head moves only on release"
        );
        assert_eq!(rx.release(), 5);
        assert_eq!(r.header().head.load(Ordering::Relaxed), 5);
        // The bytes really are in the separate data region, at index % capacity.
        assert_eq!(&r.data[0].to_le_bytes()[..5], b"hello");
    }

    #[test]
    fn indices_wrap_in_u32() {
        let mut r = Regions::new(8);
        r.header().tail.store(u32::MAX - 2, Ordering::Relaxed);
        r.header().head.store(u32::MAX - 2, Ordering::Relaxed);
        let (mut tx, mut rx) = r.pair(8);
        let mut sent = 0u8;
        let mut got = 0u8;
        for _ in 0..5 {
            while tx.push(sent).is_ok() {
                sent = sent.wrapping_add(1);
            }
            assert_eq!(tx.free().unwrap(), 0, "full stays full across the wrap");
            tx.publish();
            assert_eq!(rx.len().unwrap(), 8);
            let mut out = [0; 5];
            assert_eq!(rx.read(&mut out).unwrap(), 5);
            for b in out {
                assert_eq!(b, got);
                got = got.wrapping_add(1);
            }
            rx.release();
        }
        let tail = r.header().tail.load(Ordering::Relaxed);
        assert!(tail < 100, "tail wrapped past u32::MAX, now {tail}");
    }

    #[test]
    fn notification_rule() {
        let mut r = Regions::new(4);
        r.header().producer_signalled.store(1, Ordering::Relaxed);
        let (mut tx, mut rx) = r.pair(4);
        assert!(!tx.should_notify(0));
        assert!(
            tx.should_notify(1),
            "the producer always notifies after publishing"
        );
        assert_eq!(tx.write(b"abcdef").unwrap(), 4);
        tx.publish();
        assert!(!rx.should_notify(true), "the producer did not ask");
        // Full: the producer parks.
        assert!(!tx.park().unwrap(), "no space: sleep");
        assert_eq!(r.header().producer_signalled.load(Ordering::Relaxed), 0);
        assert_eq!(rx.pop().unwrap(), Some(b'a'));
        assert!(
            !rx.should_notify(false),
            "nothing freed yet: keep the request"
        );
        let freed = rx.release();
        assert!(rx.should_notify(freed > 0));
        assert_eq!(
            r.header().producer_signalled.load(Ordering::Relaxed),
            1,
            "request taken"
        );
        assert!(!rx.should_notify(true), "one request, one notification");
        // Space already there: park cancels its own request.
        assert!(tx.park().unwrap());
        assert_eq!(r.header().producer_signalled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn misbehaving_peer_is_reported() {
        let mut r = Regions::new(8);
        let (mut tx, mut rx) = r.pair(8);
        tx.write(b"ab").unwrap();
        tx.publish();
        // A producer claiming 9 bytes in an 8-byte ring.
        r.header().tail.store(9, Ordering::Relaxed);
        let mut out = [0; 16];
        let e = rx.read(&mut out).unwrap_err();
        assert_eq!(e.field, IndexField::Tail);
        assert_eq!(e.value, 9);
        // A consumer claiming to have read past the tail.
        r.header().head.store(5, Ordering::Relaxed);
        let e = tx.free().unwrap_err();
        assert_eq!(e.field, IndexField::Head);
        assert_eq!(tx.park().unwrap_err().value, 5);
    }

    #[test]
    fn regions_are_checked() {
        let mut r = Regions::new(64);
        let (q, d) = r.ptrs();
        // SAFETY: valid buffers; every call fails before a handle exists.
        unsafe {
            assert_eq!(
                SerialProducer::new(q, 4096, d, 48).err(),
                Some(SerialQueueError::Region(RegionError::Capacity(
                    CapacityError::NotPowerOfTwo(48)
                )))
            );
            assert_eq!(
                SerialConsumer::new(q, 11, d, 64).err(),
                Some(SerialQueueError::Region(RegionError::TooSmall {
                    needed: 12,
                    have: 11
                }))
            );
            let odd = NonNull::new(q.as_ptr().add(2)).unwrap();
            assert_eq!(
                SerialConsumer::new(odd, 64, d, 64).err(),
                Some(SerialQueueError::Region(RegionError::Misaligned))
            );
            let unmapped = SerialConnectionResource {
                queue: RegionResource {
                    vaddr: 0,
                    size: 4096,
                },
                data: RegionResource {
                    vaddr: 0x1000,
                    size: 64,
                },
                id: 0,
                _pad: [0; 7],
            };
            assert_eq!(
                SerialProducer::from_connection(&unmapped).err(),
                Some(SerialQueueError::Unmapped)
            );
        }
        // Inconsistent indices left by a previous incarnation are refused at creation.
        r.header().tail.store(100, Ordering::Relaxed);
        let (q, d) = r.ptrs();
        // SAFETY: as above.
        let e = unsafe { SerialConsumer::new(q, 4096, d, 64) }.err();
        assert!(matches!(
            e,
            Some(SerialQueueError::Handle(HandleError::Peer(_)))
        ));
    }

    #[test]
    fn from_connection_uses_config_addresses() {
        let mut r = Regions::new(32);
        let (q, d) = r.ptrs();
        let conn = SerialConnectionResource {
            queue: RegionResource {
                vaddr: q.as_ptr().expose_provenance() as u64,
                size: 4096,
            },
            data: RegionResource {
                vaddr: d.as_ptr().expose_provenance() as u64,
                size: 32,
            },
            id: 3,
            _pad: [0; 7],
        };
        // SAFETY: the connection describes the live buffers; one handle per role.
        let (mut tx, mut rx) = unsafe {
            (
                SerialProducer::from_connection(&conn).unwrap(),
                SerialConsumer::from_connection(&conn).unwrap(),
            )
        };
        assert_eq!(tx.capacity(), 32);
        tx.write(b"xyz").unwrap();
        tx.publish();
        assert_eq!(rx.pop().unwrap(), Some(b'x'));
    }

    #[test]
    fn peek_does_not_consume_across_the_wrap() {
        let mut r = Regions::new(8);
        // Start near the u32 wrap and off slot 0, so the peeked run wraps both ways.
        r.header().tail.store(u32::MAX - 4, Ordering::Relaxed);
        r.header().head.store(u32::MAX - 4, Ordering::Relaxed);
        let (mut tx, mut rx) = r.pair(8);
        assert_eq!(tx.write(b"abcdefgh").unwrap(), 8);
        tx.publish();
        let mut out = [0; 8];
        assert_eq!(rx.peek_at(0, &mut out).unwrap(), 8);
        assert_eq!(&out, b"abcdefgh");
        assert_eq!(rx.peek_at(6, &mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"gh");
        assert_eq!(rx.peek_at(8, &mut out).unwrap(), 0, "nothing past the tail");
        assert_eq!(rx.peek_at(usize::MAX, &mut out).unwrap(), 0);
        // Consume some (popped, not yet released): peeking starts after them.
        assert_eq!(rx.skip(3).unwrap(), 3);
        assert_eq!(rx.peek_at(0, &mut out[..2]).unwrap(), 2);
        assert_eq!(&out[..2], b"de");
        assert_eq!(rx.release(), 3);
        assert_eq!(rx.pop().unwrap(), Some(b'd'));
        assert_eq!(rx.peek_at(0, &mut out).unwrap(), 4);
        assert_eq!(&out[..4], b"efgh");
        rx.release();
        // Refill past the wrap and peek again.
        assert_eq!(tx.write(b"ijkl").unwrap(), 4);
        tx.publish();
        assert_eq!(rx.peek_at(1, &mut out).unwrap(), 7);
        assert_eq!(&out[..7], b"fghijkl");
        assert_eq!(rx.skip(100).unwrap(), 8, "skip stops at the tail");
        assert_eq!(rx.release(), 8);
        assert!(rx.is_empty().unwrap());
    }

    #[test]
    fn peek_reports_a_lying_producer() {
        let mut r = Regions::new(8);
        let (_tx, mut rx) = r.pair(8);
        r.header().tail.store(1000, Ordering::Relaxed);
        let mut out = [0; 4];
        assert!(rx.peek_at(0, &mut out).is_err());
        assert!(rx.skip(1).is_err());
    }

    #[test]
    fn bad_channel_id_is_an_error() {
        let mut conn = SerialConnectionResource {
            queue: RegionResource { vaddr: 0, size: 0 },
            data: RegionResource { vaddr: 0, size: 0 },
            id: 61,
            _pad: [0; 7],
        };
        assert_eq!(conn.channel(), Ok(Channel::new(61)));
        conn.id = 62;
        assert_eq!(conn.channel(), Err(SerialQueueError::Channel(62)));
    }

    #[test]
    fn new_producer_withdraws_a_stale_request() {
        let mut r = Regions::new(8);
        assert_eq!(r.header().producer_signalled.load(Ordering::Relaxed), 0);
        let (_tx, rx) = r.pair(8);
        assert_eq!(r.header().producer_signalled.load(Ordering::Relaxed), 1);
        assert!(!rx.should_notify(true), "nobody waits");
    }

    #[test]
    fn rfind_and_move_to() {
        let mut a = Regions::new(16);
        let mut b = Regions::new(8);
        let (mut src_tx, mut src) = a.pair(16);
        let (mut dst, mut dst_rx) = b.pair(8);
        src_tx.write(b"ab\ncd\nefghijkl").unwrap();
        src_tx.publish();
        assert_eq!(src.rfind(b'\n', 16).unwrap(), Some(5));
        assert_eq!(src.rfind(b'\n', 5).unwrap(), Some(2));
        assert_eq!(src.rfind(b'\n', 2).unwrap(), None);
        assert_eq!(
            src.rfind(b'x', 100).unwrap(),
            None,
            "past the tail is not searched"
        );
        // Only as much as `dst` takes is read from `src`: nothing is lost.
        assert_eq!(src.move_to(&mut dst, 100), 8);
        assert_eq!(dst.publish(), 8);
        assert_eq!(src.release(), 8);
        let mut out = [0; 8];
        assert_eq!(dst_rx.read(&mut out).unwrap(), 8);
        dst_rx.release();
        assert_eq!(&out, b"ab\ncd\nef");
        assert_eq!(src.move_to(&mut dst, 3), 3);
        assert_eq!(
            src.move_to(&mut dst, 100),
            3,
            "stops at src's tail (14 bytes)"
        );
        dst.publish();
        assert_eq!(dst_rx.read(&mut out).unwrap(), 6);
        assert_eq!(&out[..6], b"ghijkl");
        // A lying source stops the move.
        a.header().tail.store(1000, Ordering::Relaxed);
        assert_eq!(src.move_to(&mut dst, 4), 0);
        assert!(src.rfind(b'a', 4).is_err());
    }

    #[test]
    fn client_queues_isolate_broken_ones() {
        let mut good = Regions::new(8);
        let mut bad = Regions::new(8);
        bad.header().tail.store(77, Ordering::Relaxed);
        let conn = |r: &mut Regions, id| {
            let (q, d) = r.ptrs();
            SerialConnectionResource {
                queue: RegionResource {
                    vaddr: q.as_ptr().expose_provenance() as u64,
                    size: 4096,
                },
                data: RegionResource {
                    vaddr: d.as_ptr().expose_provenance() as u64,
                    size: 8,
                },
                id,
                _pad: [0; 7],
            }
        };
        let conns = [conn(&mut good, 1), conn(&mut bad, 2), conn(&mut good, 3)];
        // SAFETY: the buffers outlive the handles; the consumers over `good` are never used.
        let (queues, faulty) =
            unsafe { client_queues(conns[..2].iter(), SerialConsumer::from_connection) }.unwrap();
        assert_eq!(faulty, 0b10);
        assert_eq!(queues[0].as_ref().map(|(_, ch)| ch.index()), Some(1));
        assert!(queues[1].is_none() && queues[2].is_none());
        let mut unmapped = conns[2];
        unmapped.data.vaddr = 0;
        // SAFETY: as above; fails before making a handle over `unmapped`.
        let r =
            unsafe { client_queues([conns[0], unmapped].iter(), SerialConsumer::from_connection) };
        assert_eq!(r.err(), Some(SerialQueueError::Unmapped));
        let mut far = conns[0];
        far.id = 99;
        // SAFETY: as above.
        let r = unsafe { client_queues([far].iter(), SerialConsumer::from_connection) };
        assert_eq!(r.err(), Some(SerialQueueError::Channel(99)));
    }
}
