// SPDX-License-Identifier: BSD-2-Clause
//! Shared memory for simulated PDs.

use crate::mapped::{Access, Lookup};
use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Every live region of the process: base, size, rights (the sim backend's mapping table, for
/// [`Mapped`](crate::Mapped)).
static LIVE: Mutex<Vec<(usize, usize, Access)>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<(usize, usize, Access)>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the table of live regions says about `[vaddr, vaddr + size)`.
pub(crate) fn lookup(vaddr: u64, size: u64) -> Lookup {
    let (Ok(start), Ok(size)) = (usize::try_from(vaddr), usize::try_from(size)) else {
        return Lookup::Unmapped;
    };
    let end = start.saturating_add(size);
    live()
        .iter()
        .find(|&&(base, len, _)| start >= base && end <= base + len)
        .map_or(Lookup::Unmapped, |&(_, _, a)| Lookup::Mapped(a))
}

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
        Self::with_access(len, Access::ReadWrite)
    }

    /// As [`new`](Self::new), entered in the sim's mapping table as read-only: a config that
    /// claims it read-write is refused by [`Mapped::check`](crate::Mapped::check). (The memory
    /// itself stays writable: the sim has no MMU; the test that made it can fill it.)
    pub fn read_only(len: usize) -> Self {
        Self::with_access(len, Access::Read)
    }

    fn with_access(len: usize, access: Access) -> Self {
        let size = len.max(1).div_ceil(Self::PAGE) * Self::PAGE;
        #[allow(clippy::expect_used)] // documented panic
        let layout = Layout::from_size_align(size, Self::PAGE).expect("region size overflows");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
        live().push((ptr.as_ptr().addr(), size, access));
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
        let base = self.ptr.as_ptr().addr();
        live().retain(|&(b, _, _)| b != base);
        // SAFETY: allocated in `new` with this layout and not freed before.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({:p}, {} bytes)", self.ptr, self.len())
    }
}
