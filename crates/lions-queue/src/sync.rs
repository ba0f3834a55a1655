// SPDX-License-Identifier: BSD-2-Clause
//! The atomics and cells the ring is built from: `core`'s normally, loom's under `--cfg loom` so the
//! loom models exercise the very code that runs in a protection domain.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{Ordering, fence};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};
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
    /// # Safety
    /// The caller owns the slot for reading under the ring protocol.
    #[inline]
    pub(crate) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: the pointer comes from a live cell and is aligned; the caller owns the slot.
        return unsafe { core::ptr::read_volatile(self.0.get()) };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        return self.0.with(|p| unsafe { p.read() });
    }

    /// Volatile write of the slot.
    ///
    /// # Safety
    /// The caller owns the slot for writing under the ring protocol.
    #[inline]
    pub(crate) unsafe fn write(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: the pointer comes from a live cell and is aligned; the caller owns the slot.
        unsafe {
            core::ptr::write_volatile(self.0.get(), value)
        };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        self.0.with_mut(|p| unsafe { p.write(value) });
    }
}
