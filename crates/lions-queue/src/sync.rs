// SPDX-License-Identifier: BSD-2-Clause
//! The atomics and cells the ring is built from: `core`'s normally, loom's under `--cfg loom` so the
//! loom models exercise the very code that runs in a protection domain.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{Ordering, fence};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{Ordering, fence};

/// One ring slot: a cell the peer may write while we hold a shared reference to the array.
///
/// Outside loom it is `repr(transparent)` over `T`, so an array of slots has exactly the C layout of
/// an array of entries.
#[cfg(not(loom))]
#[repr(transparent)]
pub struct Slot<T>(core::cell::UnsafeCell<T>);

/// One ring slot (loom build: loom's cell, which reports unsynchronised access as a data race).
#[cfg(loom)]
pub struct Slot<T>(loom::cell::UnsafeCell<T>);

// SAFETY: a slot is only accessed through `read`/`write`, whose callers (the ring handles) hold the
// slot by the SPSC ownership protocol: the producer writes a slot only while it lies outside
// [head, tail), the consumer reads it only while it lies inside, and the index publication uses
// Release/Acquire, so the accesses never race between well-behaved peers. A misbehaving peer can at
// worst make us read a torn `T`, which is harmless because `T: FromBytes` accepts every bit pattern.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T: Copy> Slot<T> {
    /// A slot holding `value`.
    pub fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(core::cell::UnsafeCell::new(value));
        #[cfg(loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Volatile read of the slot (the peer may write shared memory behind the compiler's back).
    ///
    /// The slot is read as a `MaybeUninit<T>`, i.e. as bytes, which the compiler does in whole
    /// words (a `T` read volatile is split into one load per field).
    ///
    /// # Safety
    /// The caller owns the slot for reading under the ring protocol.
    #[inline]
    pub(crate) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: the pointer comes from a live cell and is aligned, and `MaybeUninit<T>` has the
        // layout of `T`; the caller owns the slot. The bytes were written as a `T` (by us or by a
        // peer through the same layout, `T: FromBytes` accepting every bit pattern), so the copy
        // is an initialised `T`.
        return unsafe {
            core::ptr::read_volatile(self.0.get().cast::<core::mem::MaybeUninit<T>>()).assume_init()
        };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        return self.0.with(|p| unsafe { p.read() });
    }

    /// Plain (non-volatile) write of the slot, for runs the compiler may vectorise; the release
    /// store of the index that publishes it orders it before the peer's reads.
    ///
    /// # Safety
    /// The caller owns the slot for writing under the ring protocol.
    #[inline(always)]
    pub(crate) unsafe fn write_plain(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: the pointer comes from a live cell and is aligned; the caller owns the slot.
        unsafe {
            self.0.get().write(value)
        };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        self.0.with_mut(|p| unsafe { p.write(value) });
    }

    /// Write of the slot: plain, as [`write_plain`](Self::write_plain), so the compiler stores the
    /// entry in whole words (a volatile `T` is stored one field at a time). Volatile buys nothing
    /// here: we never read our own writes back, and the Release store of the index that publishes
    /// the slot orders the write before the peer's reads (a peer that reads early, against the
    /// protocol, may see a torn entry either way).
    ///
    /// # Safety
    /// The caller owns the slot for writing under the ring protocol.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: forwarded from the caller.
        unsafe { self.write_plain(value) }
    }
}

/// Read `K` consecutive slots at once into a private copy, each slot exactly once: one plain read of
/// the array (so the compiler may use wide loads and vectorise what the caller does with the copy),
/// then a compiler fence. The copy is made before the fence and used only after it, and memory may
/// have changed across a fence, so the compiler cannot satisfy a later use of the copy by reading
/// the slot again (the double fetch a volatile read also rules out, one slot at a time). A
/// misbehaving peer writing meanwhile can only make the copy a torn `T`, valid because
/// `T: FromBytes`.
///
/// # Safety
/// As for [`Slot::read`], for every slot read.
#[inline(always)]
pub(crate) unsafe fn read_array<T: Copy, const K: usize>(slots: &[Slot<T>; K]) -> [T; K] {
    #[cfg(not(loom))]
    {
        // SAFETY: `Slot<T>` is `repr(transparent)` over `UnsafeCell<T>`, so `[Slot<T>; K]` has the
        // layout of `[T; K]` and the pointer (from the cells, aligned) may be read through; the
        // caller owns the slots.
        let v = unsafe {
            core::ptr::read(
                core::cell::UnsafeCell::raw_get(slots.as_ptr().cast::<core::cell::UnsafeCell<T>>())
                    .cast::<[T; K]>(),
            )
        };
        // The copy is made before the fence and used after it, so the compiler cannot replace a
        // use by a second read of the slots (memory may have changed across the fence).
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        v
    }
    #[cfg(loom)]
    // SAFETY: forwarded from the caller.
    return core::array::from_fn(|i| unsafe { slots[i].read() });
}

/// Copy `src` into the first slots, `min(src.len(), slots.len())` of them (one `memcpy` outside
/// loom; the callers pass runs of equal length). The caller owns those slots for writing under the
/// ring protocol.
///
/// # Safety
/// As for [`Slot::write`], for every slot written.
#[inline]
pub(crate) unsafe fn write_run<T: Copy>(slots: &[Slot<T>], src: &[T]) {
    debug_assert!(slots.len() >= src.len());
    #[cfg(not(loom))]
    // SAFETY: `Slot<T>` is `repr(transparent)` over `UnsafeCell<T>`, so the slice's pointer gives
    // write access to its `slots.len()` elements, of which we write at most that many; `src` is
    // private memory, so the ranges do not overlap; the caller owns the slots.
    unsafe {
        let dst =
            core::cell::UnsafeCell::raw_get(slots.as_ptr().cast::<core::cell::UnsafeCell<T>>());
        core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len().min(slots.len()));
    }
    #[cfg(loom)]
    for (slot, &v) in slots.iter().zip(src) {
        // SAFETY: forwarded from the caller.
        unsafe { slot.write(v) };
    }
}

/// Copy the first slots into `dst`, `min(dst.len(), slots.len())` of them (one `memcpy` outside
/// loom). The copy lands in private memory, so later checks of it cannot be raced by the peer.
///
/// # Safety
/// As for [`Slot::read`], for every slot read.
#[inline]
pub(crate) unsafe fn read_run<T: Copy>(slots: &[Slot<T>], dst: &mut [T]) {
    debug_assert!(slots.len() >= dst.len());
    #[cfg(not(loom))]
    // SAFETY: as in `write_run`, reading; `dst` is private memory distinct from the slots.
    unsafe {
        let src =
            core::cell::UnsafeCell::raw_get(slots.as_ptr().cast::<core::cell::UnsafeCell<T>>());
        core::ptr::copy_nonoverlapping(
            src.cast_const(),
            dst.as_mut_ptr(),
            dst.len().min(slots.len()),
        );
    }
    #[cfg(loom)]
    for (slot, d) in slots.iter().zip(dst) {
        // SAFETY: forwarded from the caller.
        *d = unsafe { slot.read() };
    }
}
