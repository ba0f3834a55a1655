// SPDX-License-Identifier: BSD-2-Clause
//! Placing a ring in memory: in a shared region laid out like a C queue struct, or in storage owned by
//! this process (tests, the sim backend).

use crate::capacity::{Capacity, CapacityError};
use crate::index::RingIndex;
use crate::ring::{Consumer, HandleError, Producer};
use crate::signal::{SIGNAL_NOT_REQUESTED, Signal};
use crate::sync::{AtomicU32, Slot};
use core::ptr::NonNull;
use zerocopy::FromBytes;

/// A `#[repr(C)]` queue header as a wire layout defines it: where the head and tail live and where
/// the entry array starts.
///
/// # Safety
/// `head` and `tail` return fields of `self`; `ENTRIES_OFFSET` is the offset of the entry array
/// from the start of the header in the C layout and is a multiple of `align_of::<Entry>()`.
pub unsafe trait QueueHeader: Sized {
    /// Index width of this layout.
    type Index: RingIndex;
    /// Entry type stored in the ring.
    type Entry: Copy + FromBytes;
    /// Offset of the entry array, for layouts with the entries after the header (0 if separate).
    const ENTRIES_OFFSET: usize;
    /// The consumer-owned index.
    fn head(&self) -> &<Self::Index as RingIndex>::Atomic;
    /// The producer-owned index.
    fn tail(&self) -> &<Self::Index as RingIndex>::Atomic;
}

/// Why a region could not hold a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// The region's base is not aligned for the header or the entries.
    Misaligned,
    /// The region is smaller than header plus `capacity` entries.
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes the region has.
        have: usize,
    },
    /// The capacity itself was refused.
    Capacity(CapacityError),
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Misaligned => write!(f, "queue region is misaligned"),
            Self::TooSmall { needed, have } => {
                write!(f, "queue region has {have} bytes, needs {needed}")
            }
            Self::Capacity(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for RegionError {}

/// One ring's memory, checked against its capacity, not yet claimed by a role. Made only by the
/// unsafe constructors (which carry the one-handle-per-role promise) and consumed by
/// [`producer`](Self::producer) or [`consumer`](Self::consumer).
pub struct QueueMemory<'a, H: QueueHeader> {
    header: &'a H,
    slots: &'a [Slot<H::Entry>],
    cap: Capacity,
}

impl<'a, H: QueueHeader> QueueMemory<'a, H> {
    /// A queue whose entries follow the header in one region (net, blk, I²C, fs).
    ///
    /// # Safety
    /// `base..base + len` is mapped readable and writable for `'a`, is shared with at most one peer,
    /// and this process makes at most one handle of each role over it.
    pub unsafe fn inline(
        base: NonNull<u8>,
        len: usize,
        cap: Capacity,
    ) -> Result<Self, RegionError> {
        let n = usize::try_from(cap.slots()).map_err(|_| RegionError::TooSmall {
            needed: usize::MAX,
            have: len,
        })?;
        let needed = n
            .checked_mul(size_of::<H::Entry>())
            .and_then(|b| b.checked_add(H::ENTRIES_OFFSET))
            .ok_or(RegionError::TooSmall {
                needed: usize::MAX,
                have: len,
            })?;
        let needed = needed.max(size_of::<H>());
        if len < needed {
            return Err(RegionError::TooSmall { needed, have: len });
        }
        if base.as_ptr().align_offset(align_of::<H>()) != 0
            || base.as_ptr().align_offset(align_of::<H::Entry>()) != 0
        {
            return Err(RegionError::Misaligned);
        }
        // SAFETY: aligned and inside a mapping the caller vouches for; the header's fields are
        // atomics or plain integers, valid for any bit pattern.
        let header = unsafe { base.cast::<H>().as_ref() };
        // SAFETY: `ENTRIES_OFFSET + n * size_of::<Entry>() <= len`, the offset is entry-aligned (trait
        // contract), and `Slot<T>` is `repr(transparent)` over `T`, valid for any bits (`FromBytes`).
        let slots = unsafe {
            core::slice::from_raw_parts(
                base.as_ptr()
                    .add(H::ENTRIES_OFFSET)
                    .cast::<Slot<H::Entry>>(),
                n,
            )
        };
        Ok(Self { header, slots, cap })
    }

    /// A queue whose header and entries live in separate regions (serial: header region plus a byte
    /// data region).
    ///
    /// # Safety
    /// As for [`inline`](Self::inline), for both regions.
    pub unsafe fn separate(
        header: NonNull<H>,
        data: NonNull<u8>,
        data_len: usize,
        cap: Capacity,
    ) -> Result<Self, RegionError> {
        let n = usize::try_from(cap.slots()).map_err(|_| RegionError::TooSmall {
            needed: usize::MAX,
            have: data_len,
        })?;
        let needed = n
            .checked_mul(size_of::<H::Entry>())
            .ok_or(RegionError::TooSmall {
                needed: usize::MAX,
                have: data_len,
            })?;
        if data_len < needed {
            return Err(RegionError::TooSmall {
                needed,
                have: data_len,
            });
        }
        if !header.as_ptr().is_aligned() || data.as_ptr().align_offset(align_of::<H::Entry>()) != 0
        {
            return Err(RegionError::Misaligned);
        }
        // SAFETY: aligned, mapped per the caller's promise, any bit pattern valid.
        let header = unsafe { header.as_ref() };
        // SAFETY: `n` entries fit in the data region; `Slot<T>` is transparent over `T: FromBytes`.
        let slots =
            unsafe { core::slice::from_raw_parts(data.as_ptr().cast::<Slot<H::Entry>>(), n) };
        Ok(Self { header, slots, cap })
    }

    /// The header (for class-specific fields such as signal flags).
    pub fn header(&self) -> &'a H {
        self.header
    }

    /// Claim the producer role.
    pub fn producer(self) -> Result<Producer<'a, H::Index, H::Entry>, HandleError> {
        // SAFETY: `QueueMemory` exists only through the unsafe constructors whose callers promised one
        // handle per role, and `self` is consumed here.
        unsafe { Producer::new(self.header.head(), self.header.tail(), self.slots, self.cap) }
    }

    /// Claim the consumer role.
    pub fn consumer(self) -> Result<Consumer<'a, H::Index, H::Entry>, HandleError> {
        // SAFETY: as for `producer`.
        unsafe { Consumer::new(self.header.head(), self.header.tail(), self.slots, self.cap) }
    }
}

/// Ring storage owned by this process: both ends and a signal flag, for tests, benchmarks, loom
/// models and the sim backend. `N` is the slot count.
///
/// Not a wire layout (those are [`QueueHeader`]s over shared regions): the head, the tail, the flag
/// and the slots each start a cache line of their own, so the producer's and the consumer's stores
/// do not invalidate each other's lines (as rtrb pads its indices).
#[repr(C)]
pub struct RingStorage<I: RingIndex, T, const N: usize> {
    pub(crate) head: CacheLine<I::Atomic>,
    pub(crate) tail: CacheLine<I::Atomic>,
    flag: CacheLine<AtomicU32>,
    slots: CacheLine<[Slot<T>; N]>,
}

/// A field alone on its cache line (128 bytes: two 64-byte lines, which adjacent-line prefetchers
/// fetch together on x86_64, and the line size of some aarch64 cores).
#[repr(C, align(128))]
pub(crate) struct CacheLine<T>(T);

impl<T> core::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<I: RingIndex, T: Copy + FromBytes, const N: usize> RingStorage<I, T, N> {
    /// Empty storage with both indices at `start` (tests start near the wrap).
    pub fn starting_at(start: I) -> Self {
        Self {
            head: CacheLine(I::new_atomic(start)),
            tail: CacheLine(I::new_atomic(start)),
            flag: CacheLine(AtomicU32::new(SIGNAL_NOT_REQUESTED)),
            slots: CacheLine(core::array::from_fn(|_| Slot::new(T::new_zeroed()))),
        }
    }

    /// The shared head, for tests that play a misbehaving consumer (no handle needed).
    pub fn raw_head(&self) -> &I::Atomic {
        &self.head.0
    }

    /// The shared tail, for tests that play a misbehaving producer.
    pub fn raw_tail(&self) -> &I::Atomic {
        &self.tail.0
    }

    /// Empty storage with both indices at zero.
    pub fn new() -> Self {
        Self::starting_at(I::ZERO)
    }

    /// Both ends over `cap` (which must fit `N` slots) and the shared signal flag.
    #[allow(clippy::type_complexity)]
    pub fn split_with(
        &mut self,
        cap: Capacity,
    ) -> Result<(Producer<'_, I, T>, Consumer<'_, I, T>, Signal<'_>), HandleError> {
        let this: &Self = self;
        // SAFETY: `&mut self` guarantees no other handle over this storage exists for the borrow,
        // and exactly one producer and one consumer are made.
        unsafe {
            Ok((
                Producer::new(&this.head.0, &this.tail.0, &this.slots.0, cap)?,
                Consumer::new(&this.head.0, &this.tail.0, &this.slots.0, cap)?,
                Signal::new(&this.flag.0),
            ))
        }
    }

    /// Both ends over all `N` slots (`N` must be a power of two).
    #[allow(clippy::type_complexity)]
    pub fn split(
        &mut self,
    ) -> Result<(Producer<'_, I, T>, Consumer<'_, I, T>, Signal<'_>), HandleError> {
        self.split_with(Capacity::new::<I>(N as u64)?)
    }
}

impl<I: RingIndex, T: Copy + FromBytes, const N: usize> Default for RingStorage<I, T, N> {
    fn default() -> Self {
        Self::new()
    }
}
