// SPDX-License-Identifier: BSD-2-Clause
//! The serial queue wire format (`serial_queue_t`) and its two role handles.
//!
//! A [`SerialProducer`] writes bytes and the tail, a [`SerialConsumer`] reads bytes and writes the
//! head; both wrap a `lions_queue` handle over the 12-byte header and the separate data region, and
//! carry the [`Signal`] over `producer_signalled` with the serial notification rule: the producer
//! always notifies, the consumer notifies only when the producer asked.

use crate::config::SerialConnectionResource;
use core::ptr::NonNull;
use lions_queue::atomic::AtomicU32;
use lions_queue::signal::park_with;
use lions_queue::{
    Capacity, Consumer, HandleError, PeerError, Producer, PushError, QueueHeader, QueueMemory,
    RegionError, Signal,
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
    /// A zero-filled region starts as "requested", which costs at most one spurious notification.
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
}

impl core::fmt::Display for SerialQueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unmapped => write!(f, "serial queue region is not mapped"),
            Self::Region(e) => e.fmt(f),
            Self::Handle(e) => e.fmt(f),
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

/// The producing end of a serial queue (a client's Tx, the driver's Rx, a virt's side toward the
/// driver on Tx and toward clients on Rx).
pub struct SerialProducer<'a> {
    ring: Producer<'a, u32, u8>,
    signal: Signal<'a>,
}

impl<'a> SerialProducer<'a> {
    /// Producer over a queue header at `queue` and the byte array at `data` (capacity `data_len`).
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
        let mem = unsafe { memory(queue, queue_len, data, data_len) }?;
        let signal = Signal::new(&mem.header().producer_signalled);
        let ring = mem.producer().map_err(SerialQueueError::Handle)?;
        Ok(Self { ring, signal })
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

    /// Stage as many bytes of `bytes` as fit; returns how many. They become visible at the next
    /// [`publish`](Self::publish).
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, PeerError> {
        self.ring.push_slice(bytes)
    }

    /// Stage one byte.
    pub fn push(&mut self, byte: u8) -> Result<(), PushError<u8>> {
        self.ring.push(byte)
    }

    /// Publish every staged byte with one Release store of the tail; returns how many.
    pub fn publish(&mut self) -> u64 {
        self.ring.publish()
    }

    /// Free bytes now (re-reads the head).
    pub fn free(&mut self) -> Result<u64, PeerError> {
        self.ring.free()
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
        let ring = &mut self.ring;
        park_with(self.signal, || ring.free().map(|n| n > 0))
    }

    /// The generic ring handle, for operations not wrapped here.
    pub fn ring(&mut self) -> &mut Producer<'a, u32, u8> {
        &mut self.ring
    }
}

/// The consuming end of a serial queue (the driver's Tx, a client's Rx, a virt's side toward
/// clients on Tx and toward the driver on Rx).
pub struct SerialConsumer<'a> {
    ring: Consumer<'a, u32, u8>,
    signal: Signal<'a>,
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
        let mem = unsafe { memory(queue, queue_len, data, data_len) }?;
        let signal = Signal::new(&mem.header().producer_signalled);
        let ring = mem.consumer().map_err(SerialQueueError::Handle)?;
        Ok(Self { ring, signal })
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

    /// Read up to `out.len()` published bytes; returns how many. Their slots go back to the producer
    /// at the next [`release`](Self::release).
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, PeerError> {
        self.ring.pop_slice(out)
    }

    /// Read one byte.
    pub fn pop(&mut self) -> Result<Option<u8>, PeerError> {
        self.ring.pop()
    }

    /// Hand every read slot back with one Release store of the head; returns how many.
    pub fn release(&mut self) -> u64 {
        self.ring.release()
    }

    /// Bytes available now (re-reads the tail).
    pub fn len(&mut self) -> Result<u64, PeerError> {
        self.ring.len()
    }

    /// Whether nothing is available now (re-reads the tail).
    pub fn is_empty(&mut self) -> Result<bool, PeerError> {
        self.ring.is_empty()
    }

    /// The notification rule, consumer side: notify the producer only if we freed space
    /// (`did_work`) **and** it asked; a `true` answer also withdraws its request, so one request
    /// gets one notification.
    pub fn should_notify(&self, did_work: bool) -> bool {
        self.signal.should_notify(did_work)
    }

    /// The generic ring handle, for operations not wrapped here.
    pub fn ring(&mut self) -> &mut Consumer<'a, u32, u8> {
        &mut self.ring
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
        assert_eq!(tx.ring().capacity().slots(), 32);
        tx.write(b"xyz").unwrap();
        tx.publish();
        assert_eq!(rx.pop().unwrap(), Some(b'x'));
    }
}
