// SPDX-License-Identifier: BSD-2-Clause
//! Shared memory for simulated PDs.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::fmt;
use std::ptr::NonNull;

/// Zeroed, page-aligned memory shared by simulated PDs (a stand-in for a Microkit memory region),
/// freed on drop. Declare it before the [`Sim`](super::Sim) whose handlers borrow it.
pub struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    /// Page size and alignment.
    pub const PAGE: usize = 4096;

    /// At least `len` bytes, rounded up to whole pages (at least one).
    ///
    /// # Panics
    /// If the rounded size overflows `isize`.
    pub fn new(len: usize) -> Self {
        let size = len.max(1).div_ceil(Self::PAGE) * Self::PAGE;
        #[allow(clippy::expect_used)] // documented panic
        let layout = Layout::from_size_align(size, Self::PAGE).expect("region size overflows");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
        Self { ptr, layout }
    }

    /// The base address.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The address `offset` bytes in.
    ///
    /// # Panics
    /// If `offset` is beyond the end.
    pub fn at(&self, offset: usize) -> NonNull<u8> {
        assert!(offset <= self.len(), "offset {offset} outside the region");
        // SAFETY: within (or one past) the allocation.
        unsafe { self.ptr.add(offset) }
    }

    /// Size in bytes (a multiple of [`PAGE`](Self::PAGE)).
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Always false (a region has at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout and not freed before.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({:p}, {} bytes)", self.ptr, self.len())
    }
}
