// SPDX-License-Identifier: BSD-2-Clause
//! The serial queue wire format (`serial_queue_t`) and its two role handles.
//!
//! A [`SerialProducer`] writes bytes and the tail, a [`SerialConsumer`] reads bytes and writes the
//! head; both follow the serial notification rule over `producer_signalled`: the producer always
//! notifies; the consumer notifies only when the producer asked (the producer's half is the
//! [`Signal`] of `lions_queue::signal`; the consumer's half, a SeqCst fence, a load and a store, is
//! written out in [`SerialConsumer::should_notify`] so it inlines into every virt event).
//!
//! The byte ring itself is `lions_queue::bytes` (capacity checked once, masked index, the peer's
//! index re-read only when the cached view is short and checked with one compare, one copy per
//! contiguous run, `move_until` for input scanned as it is copied); the handles deref to its
//! [`ByteProducer`] and [`ByteConsumer`] and add the `serial_queue_t` header, the connection
//! config and the serial signalling rule.

use crate::config::SerialConnectionResource;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};
use lions_os::{Channel, MAX_CLIENTS};
use lions_queue::atomic::AtomicU32;
use lions_queue::bytes::{ByteConsumer, ByteProducer, ByteRing};
use lions_queue::signal::{SIGNAL_NOT_REQUESTED, SIGNAL_REQUESTED, park_with};
use lions_queue::{
    Capacity, HandleError, PeerError, QueueHeader, QueueMemory, RegionError, Signal,
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

/// The byte ring of a connection, its capacity checked (a power of two up to 2^31).
///
/// # Safety
/// As for [`memory`].
unsafe fn ring<'a>(
    queue: NonNull<u8>,
    queue_len: usize,
    data: NonNull<u8>,
    data_len: usize,
) -> Result<(&'a SerialQueue, ByteRing<'a>), SerialQueueError> {
    // SAFETY: forwarded from the caller.
    let header = unsafe { memory(queue, queue_len, data, data_len) }?.header();
    // SAFETY: forwarded from the caller; `memory` checked the data region.
    let ring = unsafe { ByteRing::new(&header.head, &header.tail, data, data_len) }
        .map_err(|e| SerialQueueError::Region(RegionError::Capacity(e)))?;
    Ok((header, ring))
}

/// The producing end of a serial queue (a client's Tx, the driver's Rx, a virt's side toward the
/// driver on Tx and toward clients on Rx): the byte ring's producer ([`ByteProducer`], which it
/// derefs to: `write`, `push`, `publish`, `free`, ...) and the signal flag.
pub struct SerialProducer<'a> {
    bytes: ByteProducer<'a>,
    signal: Signal<'a>,
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
        let (header, ring) = unsafe { ring(queue, queue_len, data, data_len) }?;
        let signal = Signal::new(&header.producer_signalled);
        let bytes = ring.producer().map_err(SerialQueueError::Handle)?;
        // A new producer is not waiting: withdraw a stale request (a zero-filled region reads as
        // "requested"), so the consumer does not send a notification nobody asked for.
        signal.cancel();
        Ok(Self { bytes, signal })
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
        park_with(self.signal, || self.bytes.free().map(|n| n >= needed))
    }
}

impl<'a> Deref for SerialProducer<'a> {
    type Target = ByteProducer<'a>;
    fn deref(&self) -> &ByteProducer<'a> {
        &self.bytes
    }
}

impl DerefMut for SerialProducer<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.bytes
    }
}

/// The consuming end of a serial queue (the driver's Tx, a client's Rx, a virt's side toward
/// clients on Tx and toward the driver on Rx): the byte ring's consumer ([`ByteConsumer`], which
/// it derefs to: `read`, `pop`, `move_to`, `release`, ...) and the signal flag.
pub struct SerialConsumer<'a> {
    bytes: ByteConsumer<'a>,
    flag: &'a AtomicU32,
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
        let (header, ring) = unsafe { ring(queue, queue_len, data, data_len) }?;
        Ok(Self {
            bytes: ring.consumer().map_err(SerialQueueError::Handle)?,
            flag: &header.producer_signalled,
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

    /// The notification rule, consumer side: notify the producer only if we freed space
    /// (`did_work`) **and** it asked; a `true` answer also withdraws its request, so one request
    /// gets one notification.
    #[inline]
    pub fn should_notify(&self, did_work: bool) -> bool {
        // Inline here (the hot path of every virt event): the notifier's half of
        // `lions_queue::signal`, a SeqCst fence between our index store and the flag load.
        if !did_work {
            return false;
        }
        fence(Ordering::SeqCst);
        if self.flag.load(Ordering::Relaxed) != SIGNAL_REQUESTED {
            return false;
        }
        self.flag.store(SIGNAL_NOT_REQUESTED, Ordering::Relaxed);
        true
    }
}

impl<'a> Deref for SerialConsumer<'a> {
    type Target = ByteConsumer<'a>;
    fn deref(&self) -> &ByteConsumer<'a> {
        &self.bytes
    }
}

impl DerefMut for SerialConsumer<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.bytes
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
