// SPDX-License-Identifier: BSD-2-Clause
//! A PD's heap in its own `.bss` (feature `heap`), for the few components that allocate on seL4
//! (a FAT or NFS server, a client linking them): [`Heap`], a `linked_list_allocator` over a
//! static array of `N` bytes that takes its memory on first use, so there is no `init` to forget.
//!
//! ```text
//! #[cfg(target_os = "none")]
//! #[global_allocator]
//! static HEAP: lions_os::heap::Heap<{ 4 << 20 }> = lions_os::heap::Heap::new();
//! ```
//!
//! On the host board a PD is a Linux process and keeps the system allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use linked_list_allocator::LockedHeap;

/// The heap's bytes, 16-byte aligned (the most any allocation of ours asks for).
#[repr(C, align(16))]
struct Memory<const N: usize>([u8; N]);

/// A heap of `N` bytes in this static (see the module docs).
pub struct Heap<const N: usize> {
    memory: UnsafeCell<Memory<N>>,
    inner: LockedHeap,
    ready: AtomicBool,
}

// SAFETY: `memory` is reached only through `inner`, which serialises every access with its lock
// (and takes the memory once, under that lock).
unsafe impl<const N: usize> Sync for Heap<N> {}

impl<const N: usize> Heap<N> {
    /// An empty heap; it takes its `N` bytes at the first allocation.
    pub const fn new() -> Self {
        Self {
            memory: UnsafeCell::new(Memory([0; N])),
            inner: LockedHeap::empty(),
            ready: AtomicBool::new(false),
        }
    }

    /// Hand the memory to the allocator, once.
    fn ready(&self) {
        if self.ready.load(Ordering::Acquire) {
            return;
        }
        let mut heap = self.inner.lock();
        if !self.ready.load(Ordering::Relaxed) {
            // SAFETY: `memory` is `N` bytes that live as long as `self` (a static), used by
            // nothing but this allocator; the flag, checked under the lock, makes this happen once.
            unsafe { heap.init(self.memory.get().cast::<u8>(), N) };
            self.ready.store(true, Ordering::Release);
        }
    }
}

impl<const N: usize> Default for Heap<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards to `LockedHeap`'s allocator over memory it owns (see `ready`).
unsafe impl<const N: usize> GlobalAlloc for Heap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.ready();
        // SAFETY: forwarded from the caller (a valid layout).
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller: `ptr` came from `alloc` with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_its_own_bytes_until_full_and_takes_them_back() {
        static HEAP: Heap<4096> = Heap::new();
        let layout = Layout::from_size_align(1024, 16).unwrap_or(Layout::new::<u8>());
        let base = HEAP.memory.get() as usize;
        // SAFETY: a valid layout; every pointer is freed with it below.
        let ptrs: [*mut u8; 3] = core::array::from_fn(|_| unsafe { HEAP.alloc(layout) });
        for p in ptrs {
            assert!(!p.is_null());
            let at = p as usize;
            assert!(
                at >= base && at + 1024 <= base + 4096,
                "inside the heap's bytes"
            );
            assert_eq!(at % 16, 0);
        }
        // SAFETY: as above.
        let too_big = unsafe { HEAP.alloc(Layout::from_size_align(2048, 16).unwrap_or(layout)) };
        assert!(too_big.is_null(), "no room left for 2 KiB");
        for p in ptrs {
            // SAFETY: from `alloc` with `layout`.
            unsafe { HEAP.dealloc(p, layout) };
        }
        // SAFETY: as above.
        let again = unsafe { HEAP.alloc(Layout::from_size_align(3072, 16).unwrap_or(layout)) };
        assert!(!again.is_null(), "the freed bytes are used again");
    }
}
