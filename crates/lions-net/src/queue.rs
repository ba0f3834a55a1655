// SPDX-License-Identifier: BSD-2-Clause
//! Net wire format: buffer descriptors, the `net_queue_t` layout, and free/active queue pairs with
//! the net notification rule (the producer notifies, only when the consumer asked).

use crate::SetupError;
use crate::config::NetConnectionResource;
use core::ptr::NonNull;
use lions_os::{Channel, RegionResource};
use lions_queue::atomic::{AtomicU16, AtomicU32};
use lions_queue::{
    Capacity, Consumer, PeerError, Producer, PushError, QueueHeader, QueueMemory, RegionError,
    Signal, signal,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of every net buffer: the smallest power of two holding an Ethernet MTU frame. Buffer `i`
/// of a data region starts at offset `i * NET_BUFFER_SIZE`.
pub const NET_BUFFER_SIZE: u64 = 2048;

/// Largest value of a descriptor's 6-bit `oid`.
pub const OID_MAX: u8 = 0x3f;

/// A buffer descriptor: `net_buff_desc_t` (16 B).
///
/// C layout (LP64): `io_or_offset` u64 at 0, `len` u16 at 8, `oid` a 6-bit bitfield that starts a
/// new storage unit right after `len`, i.e. bits 0..=5 of byte 10 (little-endian), then padding to
/// 16. The byte holding `oid` is kept raw here; its two high bits belong to no field and are ignored
/// on read and preserved on write, exactly as a C bitfield access does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct NetBuffDesc {
    /// IO address (between the virtualisers and the driver) or offset in the data region.
    pub io_or_offset: u64,
    /// Bytes of frame data in the buffer.
    pub len: u16,
    /// Storage of the 6-bit `oid` bitfield (bits 0..=5).
    oid_bits: u8,
    /// Explicit C padding.
    _pad0: u8,
    /// Explicit C padding.
    _pad1: u32,
}

/// Why a descriptor (or an oid) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// An oid above [`OID_MAX`] does not fit the 6-bit field.
    OidTooLarge(u8),
    /// The offset is not a multiple of [`NET_BUFFER_SIZE`].
    Misaligned(u64),
    /// The offset lies past the last buffer of the region.
    OutOfRange {
        /// The offset in the descriptor.
        offset: u64,
        /// Number of buffers in the region.
        num_buffers: u64,
    },
    /// The length is 0 or larger than [`NET_BUFFER_SIZE`].
    BadLength(u16),
    /// The oid names no data region of this owner.
    UnknownRegion(u8),
}

impl core::fmt::Display for BufferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OidTooLarge(o) => write!(f, "oid {o} does not fit 6 bits"),
            Self::Misaligned(o) => write!(f, "buffer offset {o:#x} is not 2048-aligned"),
            Self::OutOfRange {
                offset,
                num_buffers,
            } => {
                write!(f, "buffer offset {offset:#x} beyond {num_buffers} buffers")
            }
            Self::BadLength(l) => write!(f, "buffer length {l} outside 1..=2048"),
            Self::UnknownRegion(o) => write!(f, "oid {o} names no data region"),
        }
    }
}

impl core::error::Error for BufferError {}

impl NetBuffDesc {
    /// A descriptor with `oid = 0` (what clients send). Made as two words (the second holds
    /// `len` in its first two bytes, zeros after), so that a copy into a queue slot is two
    /// stores, not one per field.
    #[inline(always)]
    pub const fn new(io_or_offset: u64, len: u16) -> Self {
        let [a, b] = len.to_ne_bytes();
        let words: [u64; 2] = [io_or_offset, u64::from_ne_bytes([a, b, 0, 0, 0, 0, 0, 0])];
        zerocopy::transmute!(words)
    }

    /// A descriptor with an explicit oid (checked to fit 6 bits).
    pub fn with_oid(io_or_offset: u64, len: u16, oid: u8) -> Result<Self, BufferError> {
        let mut d = Self::new(io_or_offset, len);
        d.set_oid(oid)?;
        Ok(d)
    }

    /// The 6-bit region/owner id (the high bits of its byte are ignored, as C reads the bitfield).
    pub const fn oid(&self) -> u8 {
        self.oid_bits & OID_MAX
    }

    /// Set the oid; refused if it does not fit 6 bits. The byte's two unused bits are preserved.
    pub fn set_oid(&mut self, oid: u8) -> Result<(), BufferError> {
        if oid > OID_MAX {
            return Err(BufferError::OidTooLarge(oid));
        }
        self.oid_bits = (self.oid_bits & !OID_MAX) | oid;
        Ok(())
    }

    /// Index of the buffer an *offset* descriptor names in a region of `num_buffers` buffers:
    /// the offset must be 2048-aligned and inside the region.
    pub fn buffer_index(&self, num_buffers: u64) -> Result<u64, BufferError> {
        let offset = self.io_or_offset;
        if !offset.is_multiple_of(NET_BUFFER_SIZE) {
            return Err(BufferError::Misaligned(offset));
        }
        let index = offset / NET_BUFFER_SIZE;
        if index >= num_buffers {
            return Err(BufferError::OutOfRange {
                offset,
                num_buffers,
            });
        }
        Ok(index)
    }

    /// Check a frame length for transmission: `0 < len <= NET_BUFFER_SIZE`.
    pub fn check_len(&self) -> Result<(), BufferError> {
        if self.len == 0 || u64::from(self.len) > NET_BUFFER_SIZE {
            return Err(BufferError::BadLength(self.len));
        }
        Ok(())
    }
}

/// The header of a `net_queue_t` (8 B); the descriptor array follows at
/// [`NetQueue::ENTRIES_OFFSET`].
#[repr(C)]
pub struct NetQueue {
    /// Producer-owned index (offset 0).
    tail: AtomicU16,
    /// Consumer-owned index (offset 2).
    head: AtomicU16,
    /// 0 = the consumer asks to be signalled, 1 = not (offset 4).
    consumer_signalled: AtomicU32,
}

impl NetQueue {
    /// Offset of `buffers[]` from the start of the queue region.
    pub const ENTRIES_OFFSET: usize = 8;

    /// Bytes a queue region needs for `capacity` descriptors.
    pub const fn bytes_for(capacity: usize) -> usize {
        Self::ENTRIES_OFFSET + capacity * size_of::<NetBuffDesc>()
    }

    /// The consumer's signal-request flag.
    pub fn signal(&self) -> Signal<'_> {
        Signal::new(&self.consumer_signalled)
    }

    /// Entries published beyond the consumer's head, by the raw indices as C reads them: a hint
    /// for whether to pop, never used to reach a slot (the ring handle checks what it pops).
    #[inline(always)]
    fn waiting(&self) -> u16 {
        let tail = self.tail.load(core::sync::atomic::Ordering::Acquire);
        tail.wrapping_sub(self.head.load(core::sync::atomic::Ordering::Relaxed))
    }

    /// Whether the consumer's request for a signal still stands (the producer has not taken it):
    /// then whatever the producer publishes next is notified, and no re-check is needed.
    #[inline(always)]
    fn request_stands(&self) -> bool {
        self.consumer_signalled
            .load(core::sync::atomic::Ordering::Relaxed)
            == signal::SIGNAL_REQUESTED
    }
}

/// Entries the raw indices show beyond our local head of `q`. When there are some, the ring handle
/// re-reads (and checks) the tail, so the pops that follow take its fast path.
#[inline(always)]
fn look(c: &mut Consumer<'_, u16, NetBuffDesc>, q: &NetQueue) -> Result<u16, PeerError> {
    // `consumed() <= capacity <= u16::MAX + 1`; the wrapping difference is the raw count.
    #[allow(clippy::cast_possible_truncation)]
    let n = q.waiting().wrapping_sub(c.consumed() as u16);
    if n != 0 {
        c.refresh()?;
    }
    Ok(n)
}

/// Phases 1 and 2 on a queue we consume, as C does them and no more: pop while the raw view
/// promised entries (`pending`); when it runs out, release the consumed slots and look at the
/// raw indices again; once they show nothing, sleep if our request for a signal still stands,
/// else request one and re-check. An idle queue costs two index loads and a flag load.
#[inline(always)]
fn next_in(
    c: &mut Consumer<'_, u16, NetBuffDesc>,
    q: &NetQueue,
    pending: &mut u16,
) -> Result<Option<NetBuffDesc>, PeerError> {
    loop {
        if *pending != 0 {
            *pending -= 1;
            if let Some(buf) = c.pop()? {
                return Ok(Some(buf));
            }
            *pending = 0;
        }
        c.release();
        // Nothing consumed is unreleased now: the raw count is the whole count.
        *pending = q.waiting();
        if *pending != 0 {
            c.refresh()?;
            continue;
        }
        if q.request_stands() {
            return Ok(None);
        }
        q.signal().request();
        *pending = q.waiting();
        if *pending == 0 {
            return Ok(None);
        }
        q.signal().cancel();
        c.refresh()?;
    }
}

/// Phases 1 and 2 on a queue we consume, for a whole pass: `f` gets every entry, with `out` (the
/// other queue of the same end). Each round reads the raw indices once: with entries promised,
/// the tail is re-read and checked once, they are popped by the ring's fast path (the count kept
/// in a register) and the round ends by releasing their slots; with none, we sleep if our request
/// for a signal still stands, else request one and re-check. The first error stops the pass (a peer
/// error as `E`). The `pending` hint of [`next_in`] and [`take_in`] is not kept (it is only a
/// hint: the ring's pop has the last word), so a handle is drained one way or the other. `N` is
/// the count's type, a choice of code generation only (`usize` or `u16`, whichever the caller's
/// loop keeps in a register: measured with `cargo xtask bench insns`).
#[inline(always)]
fn drain_in<N, P, E: From<PeerError>>(
    c: &mut Consumer<'_, u16, NetBuffDesc>,
    q: &NetQueue,
    out: &mut P,
    mut f: impl FnMut(&mut P, NetBuffDesc) -> Result<(), E>,
) -> Result<(), E>
where
    N: From<u16> + From<u8> + Copy + PartialEq + core::ops::SubAssign,
{
    let (zero, one) = (N::from(0u8), N::from(1u8));
    loop {
        // Each round ends with a release (and a pass that stopped early is caught up by the
        // round's own): nothing consumed is unreleased, the raw count is the whole count.
        let mut n = N::from(q.waiting());
        if n == zero {
            if q.request_stands() {
                return Ok(());
            }
            q.signal().request();
            n = N::from(q.waiting());
            if n == zero {
                return Ok(());
            }
            q.signal().cancel();
        }
        c.refresh()?;
        while n != zero {
            n -= one;
            match c.pop()? {
                Some(buf) => f(out, buf)?,
                None => break,
            }
        }
        c.release();
    }
}

/// The next entry of a queue we consume without parking (`pending` as for [`next_in`]).
#[inline(always)]
fn take_in(
    c: &mut Consumer<'_, u16, NetBuffDesc>,
    q: &NetQueue,
    pending: &mut u16,
) -> Result<Option<NetBuffDesc>, PeerError> {
    if *pending == 0 {
        *pending = look(c, q)?;
        if *pending == 0 {
            return Ok(None);
        }
    }
    *pending -= 1;
    c.pop()
}

/// The next entry of a queue we consume without taking it (`pending` as for [`next_in`]).
#[inline(always)]
fn peek_in(
    c: &mut Consumer<'_, u16, NetBuffDesc>,
    q: &NetQueue,
    pending: &mut u16,
) -> Result<Option<NetBuffDesc>, PeerError> {
    if *pending == 0 {
        *pending = look(c, q)?;
        if *pending == 0 {
            return Ok(None);
        }
    }
    c.peek()
}

// SAFETY: `head` and `tail` return fields of `self`; the descriptors start at offset 8 in the C
// layout (the header is 8 bytes, descriptors are 8-aligned), a multiple of `align_of::<NetBuffDesc>()`.
unsafe impl QueueHeader for NetQueue {
    type Index = u16;
    type Entry = NetBuffDesc;
    const ENTRIES_OFFSET: usize = NetQueue::ENTRIES_OFFSET;

    fn head(&self) -> &AtomicU16 {
        &self.head
    }

    fn tail(&self) -> &AtomicU16 {
        &self.tail
    }
}

/// A restarted component's read-only look at one queue region: the raw indices and the
/// descriptors in its slots. For rebuilding what a component knew from shared memory (component
/// restart); never used on the data path, and never to pop or push (the ring handles do that).
#[derive(Clone, Copy)]
pub struct RawQueue<'a> {
    header: &'a NetQueue,
    entries: NonNull<NetBuffDesc>,
    slots: u16,
}

impl<'a> RawQueue<'a> {
    /// The queue in region `r`, of `capacity` descriptors (a connection's `num_buffers`, 1 at
    /// least).
    ///
    /// # Safety
    /// `r` is mapped readable in this component for `'a`.
    pub unsafe fn new(r: &RegionResource, capacity_: u16) -> Result<Self, QueueError> {
        let (base, len) = region_ptr(r)?;
        // The ring's own checks: capacity, alignment, the region's size for it.
        // SAFETY: forwarded from the caller (`map` only checks and borrows; it writes nothing).
        let (mem, _) = unsafe { map(base, len, capacity(capacity_.into())?) }?;
        let header = mem.header();
        // SAFETY: `map` checked the region holds the header and `capacity` entries after it, at
        // offset 8 (8-aligned as `NetBuffDesc` needs).
        let entries = unsafe { base.add(NetQueue::ENTRIES_OFFSET) }.cast();
        Ok(Self {
            header,
            entries,
            slots: capacity_,
        })
    }

    /// The producer's index (Acquire: the entries before it are visible).
    pub fn tail(&self) -> u16 {
        self.header.tail.load(core::sync::atomic::Ordering::Acquire)
    }

    /// The consumer's index.
    pub fn head(&self) -> u16 {
        self.header.head.load(core::sync::atomic::Ordering::Acquire)
    }

    /// The descriptor in the slot of raw index `index` (slot `index % capacity`, the wire rule),
    /// as it is now.
    pub fn entry(&self, index: u16) -> NetBuffDesc {
        let slot = usize::from(index) % usize::from(self.slots);
        // SAFETY: `slot < capacity`, and `new` checked the region holds `capacity` entries; a
        // volatile read of a plain-old-data value a peer may be writing (any bit pattern is a
        // valid `NetBuffDesc`).
        unsafe { self.entries.add(slot).read_volatile() }
    }

    /// The active and free queue of connection `conn`.
    ///
    /// # Safety
    /// `conn`'s queue regions are mapped readable in this component for `'a`.
    pub unsafe fn of(conn: &NetConnectionResource) -> Result<(Self, Self), QueueError> {
        // SAFETY: forwarded from the caller.
        let active = unsafe { Self::new(&conn.active_queue, conn.num_buffers) }?;
        // SAFETY: as above.
        Ok((active, unsafe {
            Self::new(&conn.free_queue, conn.num_buffers)
        }?))
    }

    /// What `conn`'s producer sent and has not had back: the last `active.tail - free.head`
    /// descriptors published on its active queue, oldest first (clamped to the capacity; exact
    /// while the consumer returns buffers in the order it got them).
    ///
    /// # Safety
    /// As for [`of`](Self::of).
    pub unsafe fn sent(
        conn: &NetConnectionResource,
    ) -> Result<impl Iterator<Item = NetBuffDesc> + Clone + 'a, QueueError> {
        // SAFETY: forwarded from the caller.
        let (active, free) = unsafe { Self::of(conn) }?;
        let tail = active.tail();
        let n = tail.wrapping_sub(free.head()).min(active.slots);
        Ok((0..n).map(move |k| active.entry(tail.wrapping_sub(n).wrapping_add(k))))
    }

    /// What `conn`'s consumer took off its active queue and has not given back: the
    /// `active.head - free.tail` descriptors before the active queue's head, oldest first (none
    /// if that is more than the capacity, impossible indices; exact while the consumer returns
    /// buffers in the order it takes them).
    ///
    /// # Safety
    /// As for [`of`](Self::of).
    pub unsafe fn taken(
        conn: &NetConnectionResource,
    ) -> Result<impl Iterator<Item = NetBuffDesc> + 'a, QueueError> {
        // SAFETY: forwarded from the caller.
        let (active, free) = unsafe { Self::of(conn) }?;
        let head = active.head();
        let n = head.wrapping_sub(free.tail());
        let n = if n <= active.slots { n } else { 0 };
        Ok((0..n).map(move |k| active.entry(head.wrapping_sub(n).wrapping_add(k))))
    }
}

/// Why a queue pair could not be set up: the one error type of every class crate's queues.
pub use lions_queue::clients::QueueError;

/// Map one queue region.
///
/// # Safety
/// As for [`QueueMemory::inline`].
unsafe fn map<'a>(
    base: NonNull<u8>,
    len: usize,
    cap: Capacity,
) -> Result<(QueueMemory<'a, NetQueue>, Signal<'a>), QueueError> {
    // SAFETY: forwarded from the caller.
    let mem = unsafe { QueueMemory::<NetQueue>::inline(base, len, cap)? };
    let sig = mem.header().signal();
    Ok((mem, sig))
}

/// The producer of one queue of a pair (what a drain pass hands its closure).
pub type Out<'a> = Producer<'a, u16, NetBuffDesc>;

/// The end of a queue pair that hands filled buffers on: consumes *free*, produces *active*. It is
/// the driver toward the Rx virt, the Rx virt (or vswitch) toward a copier, a copier toward its
/// client, a client toward the Tx virt (or vswitch), and the Tx virt toward the driver.
pub struct NetSource<'a> {
    /// Empty buffers handed to us.
    pub free: Consumer<'a, u16, NetBuffDesc>,
    /// Filled buffers we hand on.
    pub active: Producer<'a, u16, NetBuffDesc>,
    free_signal: Signal<'a>,
    active_signal: Signal<'a>,
    free_raw: Raw,
    /// The free queue's header, and the entries its raw indices last promised.
    free_q: &'a NetQueue,
    free_pending: u16,
}

/// The end of a queue pair that takes filled buffers and returns them empty: consumes *active*,
/// produces *free*. It is the peer of a [`NetSource`] on every connection.
pub struct NetSink<'a> {
    /// Empty buffers we hand back.
    pub free: Producer<'a, u16, NetBuffDesc>,
    /// Filled buffers handed to us.
    pub active: Consumer<'a, u16, NetBuffDesc>,
    free_signal: Signal<'a>,
    active_signal: Signal<'a>,
    free_raw: Raw,
    adopted: bool,
    /// The active queue's header, and the entries its raw indices last promised.
    active_q: &'a NetQueue,
    active_pending: u16,
    /// The free queue's header, and its head as last seen raw.
    free_q: &'a NetQueue,
    free_head_seen: u16,
}

/// A queue region as the handle was made over it, to make a second handle of another role.
#[derive(Clone, Copy)]
struct Raw {
    base: NonNull<u8>,
    len: usize,
    cap: Capacity,
}

/// `(base, len)` of a region named in a config, as a pointer into this address space.
fn region_ptr(r: &RegionResource) -> Result<(NonNull<u8>, usize), QueueError> {
    lions_queue::clients::region(r.vaddr, r.size)
}

fn capacity(num_buffers: u64) -> Result<Capacity, QueueError> {
    Capacity::new::<u16>(num_buffers).map_err(|e| QueueError::Region(RegionError::Capacity(e)))
}

impl<'a> NetSource<'a> {
    /// The source end over a free and an active queue region of `capacity` descriptors each.
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a`, shared with exactly one peer (the sink), and
    /// this process makes no other source over them.
    pub unsafe fn new(
        free: NonNull<u8>,
        free_len: usize,
        active: NonNull<u8>,
        active_len: usize,
        capacity_: u64,
    ) -> Result<Self, QueueError> {
        let cap = capacity(capacity_)?;
        let free_raw = Raw {
            base: free,
            len: free_len,
            cap,
        };
        // SAFETY: forwarded from the caller.
        let (free, free_signal) = unsafe { map(free, free_len, cap)? };
        // SAFETY: forwarded from the caller.
        let (active, active_signal) = unsafe { map(active, active_len, cap)? };
        Ok(Self {
            free_q: free.header(),
            free_pending: 0,
            free: free.consumer()?,
            active: active.producer()?,
            free_signal,
            active_signal,
            free_raw,
        })
    }

    /// The source end of a connection from a config (regions at their vaddrs in this component).
    ///
    /// # Safety
    /// The config describes this component's real mappings, and this process makes no other
    /// source over them.
    pub unsafe fn from_connection(conn: &NetConnectionResource) -> Result<Self, QueueError> {
        let (f, fl) = region_ptr(&conn.free_queue)?;
        let (a, al) = region_ptr(&conn.active_queue)?;
        // SAFETY: the caller vouches that the config names our mappings.
        unsafe { Self::new(f, fl, a, al, u64::from(conn.num_buffers)) }
    }

    /// sDDF's start-up convention on client connections: the *source* puts every buffer of its
    /// data region on the free queue it consumes (`net_buffers_init` by the copier toward its
    /// client, by a client on its Tx queue): `i * 2048 + base` for each `i` below the capacity.
    /// Call once, before anything was sent on this connection; the sink then adopts the new tail
    /// ([`NetSink::adopt_free`]). Returns how many buffers; refused if the queue is not empty.
    /// The signal request that zeroed memory makes on *free* is withdrawn: the source holds all
    /// its buffers now.
    pub fn prime_free(&mut self, base: u64) -> Result<u64, QueueError> {
        let Raw { base: at, len, cap } = self.free_raw;
        // SAFETY: the region this handle was made over, under the same contract. Until we send
        // a buffer the sink has nothing to push, so this temporary producer is the only writer
        // of the tail while it lives; our own consumer re-reads the tail on its next pop.
        let (mem, _) = unsafe { map(at, len, cap)? };
        let mut p = mem.producer()?;
        for i in 0..cap.slots() {
            p.push(NetBuffDesc::new(base + i * NET_BUFFER_SIZE, 0))
                .map_err(|_| QueueError::NotEmpty)?;
        }
        self.free_signal.cancel();
        Ok(p.publish())
    }

    /// Phases 1 and 2 on *free* in one call: the next returned buffer, or, once the queue is
    /// empty, release the consumed slots and request a signal (unless our request still stands) and
    /// re-check; `None` when it is safe to sleep. An idle queue costs two index loads and a flag load.
    #[inline(always)]
    pub fn next_free(&mut self) -> Result<Option<NetBuffDesc>, PeerError> {
        next_in(&mut self.free, self.free_q, &mut self.free_pending)
    }

    /// Whether *free* needs no look this event: its raw indices show nothing beyond what we
    /// took and released, and our request for a signal stands (the sink notifies when it
    /// returns buffers). Two index loads and a flag load; a hint only, as the raw view always is:
    /// a queue that is not idle is served by [`next_free`](Self::next_free).
    #[inline(always)]
    pub fn free_idle(&self) -> bool {
        self.free_q.waiting() == 0 && self.free_q.request_stands()
    }

    /// Phases 1 and 2 on *free* for a whole pass (the clients' queues in an Rx virt): `f` gets
    /// every returned buffer, with the *active* producer. Once the queue is empty the consumed
    /// slots are released and a signal requested (unless our request still stands) and the
    /// queue re-checked. A corrupt index stops the pass with the peer's error as `E`.
    #[inline(always)]
    pub fn drain_free<E: From<PeerError>>(
        &mut self,
        f: impl FnMut(&mut Out<'a>, NetBuffDesc) -> Result<(), E>,
    ) -> Result<(), E> {
        drain_in::<u16, _, _>(&mut self.free, self.free_q, &mut self.active, f)
    }

    /// The next returned buffer without parking (a copier taking its client's free buffers): the
    /// ring's pop, which re-reads and checks the tail only when its cached view runs out.
    #[inline(always)]
    pub fn take_free(&mut self) -> Result<Option<NetBuffDesc>, PeerError> {
        self.free.pop()
    }

    /// Phase 3 on *active*: publish what was staged; whether to notify the sink now (it asked and
    /// something was published).
    #[inline]
    pub fn publish_active(&mut self) -> bool {
        let n = self.active.publish();
        self.should_notify_active(n > 0)
    }

    /// Phase 2 on *free*: ask the sink to signal when it returns buffers, then re-check. `Ok(true)`:
    /// buffers arrived meanwhile (request cancelled, keep processing); `Ok(false)`: safe to sleep.
    #[inline(always)]
    pub fn park_free(&mut self) -> Result<bool, PeerError> {
        let free = &mut self.free;
        signal::park_with(self.free_signal, || free.is_empty().map(|empty| !empty))
    }

    /// Withdraw a request for a signal on *free* (e.g. the driver's hardware ring filled up).
    pub fn cancel_free_signal(&self) {
        self.free_signal.cancel();
    }

    /// Phase 3 on *active*: whether to notify the sink now. True only if `did_work` and the sink
    /// asked; the request is consumed.
    #[inline]
    pub fn should_notify_active(&self, did_work: bool) -> bool {
        did_work && self.active_signal.should_notify(true)
    }
}

impl<'a> NetSink<'a> {
    /// The sink end over a free and an active queue region of `capacity` descriptors each.
    ///
    /// # Safety
    /// As for [`NetSource::new`], with the roles swapped.
    pub unsafe fn new(
        free: NonNull<u8>,
        free_len: usize,
        active: NonNull<u8>,
        active_len: usize,
        capacity_: u64,
    ) -> Result<Self, QueueError> {
        let cap = capacity(capacity_)?;
        let free_raw = Raw {
            base: free,
            len: free_len,
            cap,
        };
        // SAFETY: forwarded from the caller.
        let (free, free_signal) = unsafe { map(free, free_len, cap)? };
        // SAFETY: forwarded from the caller.
        let (active, active_signal) = unsafe { map(active, active_len, cap)? };
        Ok(Self {
            active_q: active.header(),
            active_pending: 0,
            free_q: free.header(),
            free_head_seen: 0,
            free: free.producer()?,
            active: active.consumer()?,
            free_signal,
            active_signal,
            free_raw,
            adopted: false,
        })
    }

    /// The sink end of a connection from a config.
    ///
    /// # Safety
    /// As for [`NetSource::from_connection`].
    pub unsafe fn from_connection(conn: &NetConnectionResource) -> Result<Self, QueueError> {
        let (f, fl) = region_ptr(&conn.free_queue)?;
        let (a, al) = region_ptr(&conn.active_queue)?;
        // SAFETY: the caller vouches that the config names our mappings.
        unsafe { Self::new(f, fl, a, al, u64::from(conn.num_buffers)) }
    }

    /// Hand every buffer of a data region to the source: enqueue `base + i * 2048` for each `i`
    /// below the capacity on *free* and publish (`net_buffers_init`; `base` is 0 for offsets, the
    /// region's IO address toward a driver). Returns how many were published.
    pub fn fill_free(&mut self, base: u64) -> Result<u64, PushError<NetBuffDesc>> {
        let n = self.free.capacity().slots();
        for i in 0..n {
            self.free
                .push(NetBuffDesc::new(base + i * NET_BUFFER_SIZE, 0))?;
        }
        Ok(self.free.publish())
    }

    /// Re-read the free queue's tail from shared memory: for a sink whose source primed the free
    /// queue ([`NetSource::prime_free`]) after this handle was made (the Tx virt, made before its
    /// clients start; a client, made before its copier starts on another core). Call before the
    /// first push on *free*; refused while entries are staged.
    pub fn adopt_free(&mut self) -> Result<(), QueueError> {
        if self.free.staged() != 0 {
            return Err(QueueError::NotEmpty);
        }
        let Raw { base, len, cap } = self.free_raw;
        // SAFETY: the region this handle was made over, under the same contract; the old
        // producer is replaced, so there is still one producer handle in this process.
        let (mem, _) = unsafe { map(base, len, cap)? };
        self.free = mem.producer()?;
        self.adopted = true;
        Ok(())
    }

    /// [`adopt_free`](Self::adopt_free) unless this handle already did (call it when the first
    /// buffer arrives on *active*: by then the source has primed its free queue).
    #[inline]
    pub fn adopt_free_once(&mut self) -> Result<(), QueueError> {
        if self.adopted {
            Ok(())
        } else {
            self.adopt_free_cold()
        }
    }

    #[cold]
    #[inline(never)]
    fn adopt_free_cold(&mut self) -> Result<(), QueueError> {
        self.adopt_free()
    }

    /// Phases 1 and 2 on *active* in one call: the next buffer handed to us, or, once the queue
    /// is empty, release the consumed slots and request a signal (unless our request still stands)
    /// and re-check; `None` when it is safe to sleep. An idle queue costs two index loads and a
    /// flag load.
    #[inline(always)]
    pub fn next_active(&mut self) -> Result<Option<NetBuffDesc>, PeerError> {
        next_in(&mut self.active, self.active_q, &mut self.active_pending)
    }

    /// Phases 1 and 2 on *active* for a whole pass (an Rx virt's driver queue, a copier's virt
    /// queue): `f` gets every buffer handed to us, with the *free* producer (to hand buffers back
    /// at once). Otherwise as [`NetSource::drain_free`].
    #[inline(always)]
    pub fn drain_active<E: From<PeerError>>(
        &mut self,
        f: impl FnMut(&mut Out<'a>, NetBuffDesc) -> Result<(), E>,
    ) -> Result<(), E> {
        drain_in::<usize, _, _>(&mut self.active, self.active_q, &mut self.free, f)
    }

    /// The next buffer on *active* without taking it (a Tx virt looking at a client's next frame):
    /// an empty queue costs two index loads. [`take_active`](Self::take_active) takes it.
    #[inline(always)]
    pub fn peek_active(&mut self) -> Result<Option<NetBuffDesc>, PeerError> {
        peek_in(&mut self.active, self.active_q, &mut self.active_pending)
    }

    /// Take the buffer [`peek_active`](Self::peek_active) showed (its slot is handed back at the
    /// next release).
    #[inline(always)]
    pub fn take_active(&mut self) -> Result<Option<NetBuffDesc>, PeerError> {
        take_in(&mut self.active, self.active_q, &mut self.active_pending)
    }

    /// Whether *active* is asleep: nothing promised, popped or published beyond our head, and our
    /// request for a signal stands. Then [`peek_active`](Self::peek_active) would find nothing
    /// and [`rest_active`](Self::rest_active) would do nothing: a Tx virt's pass skips the client
    /// for the cost of three loads and compares.
    #[inline(always)]
    pub fn active_asleep(&self) -> bool {
        self.active_pending == 0
            && self.active_q.waiting() == 0
            && self.active.consumed() == 0
            && self.active_q.request_stands()
    }

    /// Whether *active* needs no look this event, by the raw indices alone: nothing published
    /// beyond the head we released, and our request for a signal stands. Two index loads and a
    /// flag load, as [`NetSource::free_idle`]. For an honest source it is
    /// [`active_asleep`](Self::active_asleep) (whatever we peeked or popped and have not
    /// released lies between the shared head and the tail); a source that moves its tail back
    /// only gets itself skipped.
    #[inline(always)]
    pub fn active_idle(&self) -> bool {
        self.active_q.waiting() == 0 && self.active_q.request_stands()
    }

    /// Phase 2 on *active* for a Tx virt, after its pass: release the consumed slots; while
    /// `holding` (frames left queued on purpose) make sure a signal is requested, without a
    /// re-check; otherwise sleep if our request still stands, else request one and re-check.
    /// `Ok(true)`: frames arrived meanwhile (request cancelled, run again).
    #[inline(always)]
    pub fn rest_active(&mut self, holding: bool) -> Result<bool, PeerError> {
        self.active.release();
        let q = self.active_q;
        if q.request_stands() {
            return Ok(false);
        }
        q.signal().request();
        if holding {
            return Ok(false);
        }
        self.active_pending = look(&mut self.active, q)?;
        if self.active_pending == 0 {
            return Ok(false);
        }
        q.signal().cancel();
        Ok(true)
    }

    /// Stage a buffer on *free*. When the source's raw head moved since we last looked, the ring
    /// handle re-reads (and checks) it first, so a queue that is full by its cached view (a Tx
    /// virt returning into a client's nearly full free queue) takes the fast path.
    #[inline(always)]
    pub fn push_free(&mut self, buf: NetBuffDesc) -> Result<(), PushError<NetBuffDesc>> {
        let head = self.free_q.head.load(core::sync::atomic::Ordering::Relaxed);
        if head != self.free_head_seen {
            self.free_head_seen = head;
            // A peer error shows again, and is reported, in the push's own refresh.
            let _ = self.free.refresh();
        }
        self.free.push(buf)
    }

    /// Phase 3 on *free*: publish what was staged; whether to notify the source now (it asked and
    /// something was published).
    #[inline]
    pub fn publish_free(&mut self) -> bool {
        let n = self.free.publish();
        self.should_notify_free(n > 0)
    }

    /// Phase 2 on *active*: ask the source to signal when it hands on buffers, then re-check.
    /// `Ok(true)`: work arrived meanwhile; `Ok(false)`: safe to sleep.
    #[inline(always)]
    pub fn park_active(&mut self) -> Result<bool, PeerError> {
        let active = &mut self.active;
        signal::park_with(self.active_signal, || active.is_empty().map(|empty| !empty))
    }

    /// Phase 2 on *active* for a sink that may leave buffers queued on purpose (a client the Tx
    /// virtualiser holds back): while `holding`, request a signal without the re-check (the
    /// queue is not empty, and that is no reason to run again) and return `Ok(false)`; otherwise
    /// [`park_active`](Self::park_active).
    #[inline]
    pub fn park_active_holding(&mut self, holding: bool) -> Result<bool, PeerError> {
        if holding {
            self.active_signal.request();
            return Ok(false);
        }
        self.park_active()
    }

    /// Withdraw a request for a signal on *active*.
    pub fn cancel_active_signal(&self) {
        self.active_signal.cancel();
    }

    /// Phase 3 on *free*: whether to notify the source now (only if `did_work` and it asked).
    #[inline]
    pub fn should_notify_free(&self, did_work: bool) -> bool {
        did_work && self.free_signal.should_notify(true)
    }
}

/// The queue a virtualiser fills toward a client: *active* of a [`NetSource`] (Rx), *free* of a
/// [`NetSink`] (Tx).
pub trait ClientEnd<'a> {
    /// That queue's producer.
    fn outbound(&mut self) -> &mut Producer<'a, u16, NetBuffDesc>;

    /// Stage `buf` on that queue.
    #[inline(always)]
    fn push_out(&mut self, buf: NetBuffDesc) -> Result<(), PushError<NetBuffDesc>> {
        self.outbound().push(buf)
    }
}

impl<'a> ClientEnd<'a> for NetSource<'a> {
    fn outbound(&mut self) -> &mut Producer<'a, u16, NetBuffDesc> {
        &mut self.active
    }
}

impl<'a> ClientEnd<'a> for NetSink<'a> {
    fn outbound(&mut self) -> &mut Producer<'a, u16, NetBuffDesc> {
        &mut self.free
    }

    #[inline(always)]
    fn push_out(&mut self, buf: NetBuffDesc) -> Result<(), PushError<NetBuffDesc>> {
        self.push_free(buf)
    }
}

/// A virtualiser's clients: one queue end and its channel each, served while live (the generic
/// table of `lions_queue::clients`, which loops over the live clients only).
pub type Clients<T> = lions_queue::clients::Clients<(T, Channel)>;

/// The client table over `conns`, each end made by `make`. A client whose queues already hold
/// inconsistent indices starts out faulty; any other bad connection is an error.
///
/// # Safety
/// As for `make` (e.g. [`NetSource::from_connection`]), for every connection.
pub unsafe fn clients<'c, T>(
    conns: impl IntoIterator<Item = &'c NetConnectionResource>,
    make: unsafe fn(&NetConnectionResource) -> Result<T, QueueError>,
) -> Result<Clients<T>, SetupError> {
    Clients::new(conns, |_, conn| {
        let ch = conn.channel()?;
        // SAFETY: forwarded from the caller.
        match unsafe { make(conn) } {
            Ok(q) => Ok(Some((q, ch))),
            Err(QueueError::Handle(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}

/// Stage `buf` on client `c`'s outbound queue. False when the client is gone or the queue is
/// full (a client that corrupted its indices is faulted).
#[inline]
pub fn push_to<'a, T: ClientEnd<'a>>(clients: &mut Clients<T>, c: usize, buf: NetBuffDesc) -> bool {
    let Some((q, _)) = clients.get(c) else {
        return false;
    };
    match q.push_out(buf) {
        Ok(()) => true,
        Err(PushError::Full(_)) => false,
        Err(PushError::Peer(..)) => {
            clients.fault(c);
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use core::sync::atomic::Ordering;
    use lions_queue::HandleError;
    use zerocopy::FromZeros;

    #[test]
    fn layouts_match_c() {
        // net_buff_desc_t: io_or_offset @0, len @8, oid bitfield in byte 10, size 16, align 8.
        assert_eq!(size_of::<NetBuffDesc>(), 16);
        assert_eq!(align_of::<NetBuffDesc>(), 8);
        assert_eq!(offset_of!(NetBuffDesc, io_or_offset), 0);
        assert_eq!(offset_of!(NetBuffDesc, len), 8);
        assert_eq!(offset_of!(NetBuffDesc, oid_bits), 10);
        assert_eq!(offset_of!(NetBuffDesc, _pad0), 11);
        assert_eq!(offset_of!(NetBuffDesc, _pad1), 12);
        // net_queue_t: tail @0, head @2, consumer_signalled @4, buffers[] @8.
        assert_eq!(size_of::<NetQueue>(), 8);
        assert_eq!(offset_of!(NetQueue, tail), 0);
        assert_eq!(offset_of!(NetQueue, head), 2);
        assert_eq!(offset_of!(NetQueue, consumer_signalled), 4);
        assert_eq!(
            NetQueue::bytes_for(512),
            8200,
            "fits the 0x3000 regions sdfgen makes"
        );
    }

    #[test]
    fn oid_is_six_bits_in_byte_ten() {
        let mut d = NetBuffDesc::with_oid(0x800, 60, 63).unwrap();
        assert_eq!(d.as_bytes()[10], 63);
        assert_eq!(d.oid(), 63);
        assert_eq!(
            NetBuffDesc::with_oid(0, 0, 64),
            Err(BufferError::OidTooLarge(64))
        );
        assert_eq!(d.set_oid(200), Err(BufferError::OidTooLarge(200)));
        assert_eq!(d.oid(), 63, "a refused set changes nothing");
        // A C peer that left the two spare bits set: they are ignored and preserved.
        let mut raw = [0u8; 16];
        raw[10] = 0b1100_0101;
        let mut d = NetBuffDesc::read_from_bytes(&raw).unwrap();
        assert_eq!(d.oid(), 5);
        d.set_oid(1).unwrap();
        assert_eq!(d.as_bytes()[10], 0b1100_0001);
        let d = NetBuffDesc::new(0x1234, 0x5678);
        assert_eq!(
            &d.as_bytes()[..12],
            &[0x34, 0x12, 0, 0, 0, 0, 0, 0, 0x78, 0x56, 0, 0]
        );
    }

    #[test]
    fn offsets_and_lengths_are_checked() {
        assert_eq!(NetBuffDesc::new(3 * 2048, 1).buffer_index(4), Ok(3));
        assert_eq!(
            NetBuffDesc::new(4 * 2048, 1).buffer_index(4),
            Err(BufferError::OutOfRange {
                offset: 8192,
                num_buffers: 4
            })
        );
        assert_eq!(
            NetBuffDesc::new(100, 1).buffer_index(4),
            Err(BufferError::Misaligned(100))
        );
        assert_eq!(
            NetBuffDesc::new(u64::MAX - 2047, 1)
                .buffer_index(u64::MAX)
                .map(|_| ()),
            Ok(())
        );
        assert!(NetBuffDesc::new(0, 2048).check_len().is_ok());
        assert_eq!(
            NetBuffDesc::new(0, 0).check_len(),
            Err(BufferError::BadLength(0))
        );
        assert_eq!(
            NetBuffDesc::new(0, 2049).check_len(),
            Err(BufferError::BadLength(2049))
        );
    }

    /// Owned, 8-aligned memory standing in for one shared queue region.
    struct Region {
        ptr: NonNull<u8>,
        len: usize,
        _mem: Vec<u64>,
    }

    impl Region {
        fn new(capacity: usize) -> Self {
            let len = NetQueue::bytes_for(capacity);
            let mut mem = vec![0u64; len.div_ceil(8)];
            let ptr = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
            Self {
                ptr,
                len,
                _mem: mem,
            }
        }

        /// Both indices at `start`, the flag at "no signal".
        fn starting_at(capacity: usize, start: u16) -> Self {
            let r = Self::new(capacity);
            r.header().tail.store(start, Ordering::Relaxed);
            r.header().head.store(start, Ordering::Relaxed);
            r.header().consumer_signalled.store(1, Ordering::Relaxed);
            r
        }

        fn header(&self) -> &NetQueue {
            // SAFETY: the region is 8-aligned, at least 8 bytes, lives as long as `self`, and holds
            // only atomics in the header.
            unsafe { self.ptr.cast::<NetQueue>().as_ref() }
        }
    }

    fn pair<'r>(free: &'r Region, active: &'r Region, cap: u64) -> (NetSource<'r>, NetSink<'r>) {
        // SAFETY: the regions outlive the handles ('r); exactly one source and one sink are made.
        unsafe {
            let src = NetSource::new(free.ptr, free.len, active.ptr, active.len, cap).unwrap();
            let sink = NetSink::new(free.ptr, free.len, active.ptr, active.len, cap).unwrap();
            (src, sink)
        }
    }

    #[test]
    fn u16_wrap_round_trip_and_full_is_full() {
        const CAP: usize = 8;
        let free = Region::starting_at(CAP, u16::MAX - 3);
        let active = Region::starting_at(CAP, u16::MAX - 3);
        let (mut src, mut sink) = pair(&free, &active, CAP as u64);
        assert_eq!(sink.fill_free(0x1000_0000).unwrap(), 8);
        assert!(sink.free.is_full().unwrap(), "all 8 slots are usable");
        let mut moved = 0u16;
        for round in 0..5u16 {
            // Source: take every free buffer, fill it, hand it on.
            while let Some(d) = src.free.pop().unwrap() {
                moved += 1;
                src.active
                    .push(NetBuffDesc::new(d.io_or_offset, 60 + round))
                    .unwrap();
            }
            src.free.release();
            // Full really is full, across the u16 wrap (the sDDF promoted-int bug).
            assert!(src.active.is_full().unwrap());
            assert!(matches!(
                src.active.push(NetBuffDesc::new(0, 1)),
                Err(PushError::Full(_))
            ));
            assert_eq!(src.active.publish(), 8);
            let (t, h) = (
                active.header().tail.load(Ordering::Relaxed),
                active.header().head.load(Ordering::Relaxed),
            );
            assert_eq!(t.wrapping_sub(h), 8);
            if t < h {
                let c_promoted = i32::from(t) - i32::from(h);
                assert_ne!(
                    c_promoted, 8,
                    "C's int-promoted tail - head misses full here"
                );
            }
            // Sink: take them all (every buffer exactly once) and return them.
            let mut seen = [false; CAP];
            for _ in 0..CAP {
                let d = sink.active.pop().unwrap().unwrap();
                assert_eq!(d.len, 60 + round);
                let i = NetBuffDesc::new(d.io_or_offset - 0x1000_0000, 0)
                    .buffer_index(8)
                    .unwrap();
                assert!(!core::mem::replace(
                    &mut seen[usize::try_from(i).unwrap()],
                    true
                ));
                sink.free.push(NetBuffDesc::new(d.io_or_offset, 0)).unwrap();
            }
            assert_eq!(sink.active.pop().unwrap(), None);
            sink.active.release();
            sink.free.publish();
        }
        assert_eq!(moved, 40);
        assert!(
            free.header().tail.load(Ordering::Relaxed) < 100,
            "the free index wrapped"
        );
    }

    /// A Tx virt may skip a client's queue only while nothing is published, nothing popped is
    /// unreleased, and its request for a signal stands: exactly when peeking would find nothing
    /// and resting would do nothing.
    #[test]
    fn a_queue_is_asleep_only_when_nothing_can_be_missed() {
        let (free, active) = (Region::new(4), Region::new(4));
        let (mut src, mut sink) = pair(&free, &active, 4);
        assert!(
            sink.active_asleep(),
            "zeroed memory: empty, and the request stands"
        );
        src.active.push(NetBuffDesc::new(0, 1)).unwrap();
        assert!(sink.active_asleep(), "staged, not published");
        src.active.publish();
        assert!(!sink.active_asleep(), "published: a frame to take");
        assert!(src.should_notify_active(true), "the request is taken");
        assert_eq!(sink.peek_active().unwrap().map(|d| d.len), Some(1));
        assert!(!sink.active_asleep(), "a frame peeked");
        assert!(sink.take_active().unwrap().is_some());
        assert!(!sink.active_asleep(), "taken but its slot not handed back");
        assert!(
            !sink.rest_active(false).unwrap(),
            "empty: request and re-check"
        );
        assert!(
            sink.active_asleep(),
            "released, and the request stands again"
        );
        assert!(src.should_notify_active(true));
        assert!(!sink.active_asleep(), "the request was taken: rest again");
    }

    /// With an honest source, the raw-index idle check answers as the full one at every step of
    /// a Tx virt's use; a source that moves its tail back gets only itself skipped.
    #[test]
    fn an_idle_queue_is_asleep_for_an_honest_source() {
        let (free, active) = (Region::new(4), Region::new(4));
        let (mut src, mut sink) = pair(&free, &active, 4);
        let mut seen = Vec::new();
        let mut both = |sink: &NetSink<'_>| {
            assert_eq!(sink.active_idle(), sink.active_asleep());
            seen.push(sink.active_idle());
        };
        both(&sink);
        src.active.push(NetBuffDesc::new(0, 1)).unwrap();
        both(&sink);
        src.active.publish();
        both(&sink);
        assert!(src.should_notify_active(true));
        assert!(sink.peek_active().unwrap().is_some());
        both(&sink);
        assert!(sink.take_active().unwrap().is_some());
        both(&sink);
        assert!(!sink.rest_active(false).unwrap());
        both(&sink);
        assert!(src.should_notify_active(true));
        both(&sink);
        assert_eq!(seen, [true, true, false, false, false, true, false]);
        // A lying source moves its tail back over a frame we took and have not released.
        assert!(!sink.rest_active(false).unwrap());
        src.active.push(NetBuffDesc::new(0, 2)).unwrap();
        src.active.publish();
        assert!(sink.take_active().unwrap().is_some());
        active.header().tail.store(1, Ordering::Relaxed);
        active
            .header()
            .consumer_signalled
            .store(0, Ordering::Relaxed);
        assert!(sink.active_idle(), "skipped");
        assert!(!sink.active_asleep());
    }

    #[test]
    fn producer_notifies_only_when_consumer_asked() {
        let free = Region::starting_at(4, 0);
        let active = Region::starting_at(4, 0);
        let (mut src, mut sink) = pair(&free, &active, 4);
        // The sink finds nothing and parks on active.
        assert!(!sink.park_active().unwrap());
        assert_eq!(
            active.header().consumer_signalled.load(Ordering::Relaxed),
            0
        );
        assert!(!src.should_notify_active(false), "no work, no notification");
        src.active.push(NetBuffDesc::new(0, 1)).unwrap();
        src.active.publish();
        assert!(src.should_notify_active(true));
        assert!(
            !src.should_notify_active(true),
            "one request, one notification"
        );
        // Work found on re-check cancels the request.
        assert!(sink.park_active().unwrap());
        assert_eq!(
            active.header().consumer_signalled.load(Ordering::Relaxed),
            1
        );
        // The source never asked for free buffers: the sink does not notify it.
        sink.free.push(NetBuffDesc::new(0, 0)).unwrap();
        sink.free.publish();
        assert!(!sink.should_notify_free(true));
        // The source parks on free while it is non-empty: no sleep.
        assert!(src.park_free().unwrap());
        src.free.pop().unwrap();
        src.free.release();
        assert!(!src.park_free().unwrap());
        sink.cancel_active_signal();
        src.cancel_free_signal();
        assert!(!sink.should_notify_free(true));
    }

    #[test]
    fn idle_queues_keep_a_standing_request_and_find_late_work() {
        let free = Region::starting_at(4, 0);
        let active = Region::starting_at(4, 0);
        let (mut src, mut sink) = pair(&free, &active, 4);
        let flag = || active.header().consumer_signalled.load(Ordering::Relaxed);
        assert_eq!(sink.next_active().unwrap(), None);
        assert_eq!(flag(), 0, "an empty queue asks for a signal");
        assert_eq!(sink.next_active().unwrap(), None);
        assert_eq!(flag(), 0, "the request still stands");
        // The source publishes and takes the request (it notifies).
        src.active.push(NetBuffDesc::new(0x800, 60)).unwrap();
        src.active.push(NetBuffDesc::new(0x1000, 61)).unwrap();
        assert!(src.publish_active());
        assert_eq!(flag(), 1);
        assert_eq!(
            sink.next_active().unwrap(),
            Some(NetBuffDesc::new(0x800, 60))
        );
        // Published meanwhile, not notified: found in the same drain.
        src.active.push(NetBuffDesc::new(0x1800, 62)).unwrap();
        src.active.publish();
        assert_eq!(sink.next_active().unwrap().map(|d| d.len), Some(61));
        assert_eq!(sink.next_active().unwrap().map(|d| d.len), Some(62));
        assert_eq!(sink.next_active().unwrap(), None);
        assert_eq!(flag(), 0, "the taken request is made again");
        assert_eq!(active.header().head.load(Ordering::Relaxed), 3, "released");
        // Peek and take: the same entry once; a Tx-style rest while holding requests a signal.
        src.active.push(NetBuffDesc::new(0x2000, 63)).unwrap();
        assert!(src.publish_active());
        assert_eq!(sink.peek_active().unwrap().map(|d| d.len), Some(63));
        assert_eq!(sink.peek_active().unwrap().map(|d| d.len), Some(63));
        assert!(!sink.rest_active(true).unwrap());
        assert_eq!(flag(), 0);
        assert_eq!(sink.take_active().unwrap().map(|d| d.len), Some(63));
        assert_eq!(sink.peek_active().unwrap(), None);
        assert!(!sink.rest_active(false).unwrap());
        assert_eq!(active.header().head.load(Ordering::Relaxed), 4);
        // The source takes what the sink returns, without parking.
        assert_eq!(src.take_free().unwrap(), None);
        sink.free.push(NetBuffDesc::new(0x800, 0)).unwrap();
        assert!(!sink.publish_free(), "the source never asked");
        assert_eq!(src.take_free().unwrap(), Some(NetBuffDesc::new(0x800, 0)));
        assert_eq!(src.take_free().unwrap(), None);
        // A lying source: five entries in a four-slot ring.
        active.header().tail.store(9, Ordering::Relaxed);
        assert!(sink.next_active().is_err());
        assert!(sink.peek_active().is_err());
    }

    #[test]
    fn a_drain_pass_takes_late_work_stops_on_error_and_parks() {
        use crate::Error;
        let free = Region::starting_at(4, 0);
        let active = Region::starting_at(4, 0);
        let (mut src, mut sink) = pair(&free, &active, 4);
        let flag = |r: &Region| r.header().consumer_signalled.load(Ordering::Relaxed);
        sink.drain_active(|_, _| Err(Error::Full)).unwrap();
        assert_eq!(flag(&active), 0, "an empty queue asks for a signal");
        for len in [60, 61] {
            src.active.push(NetBuffDesc::new(0x800, len)).unwrap();
        }
        assert!(src.publish_active());
        assert_eq!(flag(&active), 1, "the source took the request");
        // Entries published during the pass are found in it; each goes back on *free* at once.
        let mut got = Vec::new();
        sink.drain_active(|out, buf| {
            if buf.len == 60 {
                src.active.push(NetBuffDesc::new(0x1000, 62)).unwrap();
                src.active.publish();
            }
            got.push(buf.len);
            out.push(NetBuffDesc::new(buf.io_or_offset, 0))
                .map_err(Error::from)
        })
        .unwrap();
        assert_eq!(got, [60, 61, 62]);
        assert_eq!(flag(&active), 0, "the taken request is made again");
        assert_eq!(active.header().head.load(Ordering::Relaxed), 3, "released");
        assert_eq!(sink.free.publish(), 3);
        // An error from the closure stops the pass; the next pass carries on after it.
        for len in [63, 64] {
            src.active.push(NetBuffDesc::new(0x800, len)).unwrap();
        }
        src.active.publish();
        let mut got = Vec::new();
        let r = sink.drain_active(|_, buf| {
            got.push(buf.len);
            Err(Error::Full)
        });
        assert!(matches!(r, Err(Error::Full)));
        assert_eq!(got, [63]);
        let mut got = Vec::new();
        sink.drain_active(|_, buf| {
            got.push(buf.len);
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(got, [64]);
        assert_eq!(active.header().head.load(Ordering::Relaxed), 5);
        // The source drains what the sink returned and parks on *free*; then the queue is idle
        // until the sink writes an impossible tail, a peer error.
        let mut back = 0;
        src.drain_free(|_, _| {
            back += 1;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(back, 3);
        assert!(src.free_idle(), "nothing returned, request standing");
        free.header().tail.store(9, Ordering::Relaxed);
        assert!(!src.free_idle());
        let r = src.drain_free(|_, _| Ok::<_, Error>(()));
        assert!(matches!(r, Err(Error::Peer(_))));
    }

    #[test]
    fn corrupt_indices_are_peer_errors() {
        let free = Region::starting_at(4, 10);
        let active = Region::starting_at(4, 10);
        let (mut src, mut sink) = pair(&free, &active, 4);
        // A lying source claims 5 entries in a 4-slot ring.
        active.header().tail.store(15, Ordering::Relaxed);
        assert!(sink.active.pop().is_err());
        assert!(
            sink.park_active().is_err(),
            "the re-check reports the peer too"
        );
        // A lying source moves the free head backwards (it is the free queue's consumer).
        free.header().head.store(9, Ordering::Relaxed);
        assert_eq!(
            src.free.pop().unwrap(),
            None,
            "the consumer of free does not read head"
        );
        assert!(
            matches!(sink.free.push(NetBuffDesc::new(0, 0)), Ok(())),
            "no refresh needed yet"
        );
        assert!(sink.free.free().is_err());
        // Setting up over corrupt memory fails cleanly.
        let ok = Region::starting_at(4, 0);
        let bad = Region::starting_at(4, 0);
        bad.header().tail.store(100, Ordering::Relaxed);
        // SAFETY: test memory outliving the handle; one handle per role per region.
        let r = unsafe { NetSink::new(ok.ptr, ok.len, bad.ptr, bad.len, 4) };
        assert!(matches!(r, Err(QueueError::Handle(HandleError::Peer(_)))));
        // SAFETY: as above.
        let r = unsafe { NetSink::new(ok.ptr, ok.len, bad.ptr, bad.len, 6) };
        assert!(matches!(
            r,
            Err(QueueError::Region(RegionError::Capacity(_)))
        ));
        // SAFETY: as above; the region is too small for 8 descriptors.
        let r = unsafe { NetSink::new(ok.ptr, ok.len, bad.ptr, bad.len, 8) };
        assert!(matches!(
            r,
            Err(QueueError::Region(RegionError::TooSmall { .. }))
        ));
        let conn = NetConnectionResource::new_zeroed();
        // SAFETY: the connection names no mapping; nothing is dereferenced.
        let r = unsafe { NetSource::from_connection(&conn) };
        assert!(matches!(r, Err(QueueError::Unmapped)));
    }
}
