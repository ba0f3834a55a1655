// SPDX-License-Identifier: BSD-2-Clause
//! Data regions: arrays of [`NET_BUFFER_SIZE`]-byte buffers in shared memory, reached only through
//! bounds-checked copies, and [`Span`]s over their buffers (what cache maintenance works on).
//!
//! A peer (the device, a client) may write a data region at any time, so no Rust reference to its
//! bytes is ever made: bytes move with raw copies into or out of private memory, or between two
//! regions, and every offset and length is checked against the region first. A racing writer can at
//! worst make us copy torn bytes, which is what a frame written during its own transfer is anyway.

use crate::SetupError;
use crate::queue::{BufferError, NET_BUFFER_SIZE, NetBuffDesc};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use lions_os::{MAX_CLIENTS, RegionResource};

/// [`NET_BUFFER_SIZE`] as a `usize`.
const BUF: usize = 2048;
/// The longest span: one whole buffer.
pub(crate) const MAX_LEN: u16 = 2048;
const _: () = assert!(BUF as u64 == NET_BUFFER_SIZE && MAX_LEN as usize == BUF);

/// A mapped data region of whole buffers, borrowed for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct DataRegion<'a> {
    base: NonNull<u8>,
    buffers: u64,
    writable: bool,
    _mem: PhantomData<&'a [core::cell::UnsafeCell<u8>]>,
}

/// The first `len` bytes of one buffer of a [`DataRegion`], checked to lie inside it.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    ptr: NonNull<u8>,
    len: u16,
    writable: bool,
    _mem: PhantomData<&'a [core::cell::UnsafeCell<u8>]>,
}

impl<'a> DataRegion<'a> {
    /// `buffers` buffers from `base`, writable through this handle only if `writable`.
    ///
    /// # Safety
    /// `base .. base + buffers * 2048` is mapped readable for `'a` (and writable if `writable`);
    /// peers may write it concurrently.
    pub unsafe fn new(base: NonNull<u8>, buffers: u64, writable: bool) -> Self {
        Self {
            base,
            buffers,
            writable,
            _mem: PhantomData,
        }
    }

    /// The first `buffers` buffers of a region named in a config. Refused when the region is not
    /// mapped here or is smaller than `buffers * 2048` bytes.
    ///
    /// # Safety
    /// The config describes this component's real mapping, readable for `'a` (and writable if
    /// `writable`).
    pub unsafe fn from_resource(
        r: &RegionResource,
        buffers: u64,
        writable: bool,
    ) -> Result<Self, SetupError> {
        let (base, len) = r.as_raw_parts().ok_or(SetupError::Unmapped)?;
        let needed = buffers.saturating_mul(NET_BUFFER_SIZE);
        if (len as u64) < needed {
            return Err(SetupError::RegionTooSmall {
                needed,
                have: len as u64,
            });
        }
        // SAFETY: the mapping covers `needed` bytes (checked), readable/writable per the caller.
        Ok(unsafe { Self::new(base, buffers, writable) })
    }

    /// A region of no buffers: every offset is refused.
    pub const fn empty() -> Self {
        Self {
            base: NonNull::dangling(),
            buffers: 0,
            writable: false,
            _mem: PhantomData,
        }
    }

    /// The whole buffers of each mapped region of a config table indexed by `oid` (the copier's
    /// `rx_data`); unmapped entries (vaddr 0) are [`empty`](Self::empty).
    ///
    /// # Safety
    /// Every mapped entry describes this component's real mapping, readable for `'a` (and writable
    /// if `writable`).
    pub unsafe fn by_oid(
        table: &[RegionResource; MAX_CLIENTS],
        writable: bool,
    ) -> Result<[Self; MAX_CLIENTS], SetupError> {
        let mut out = [Self::empty(); MAX_CLIENTS];
        for (o, r) in out.iter_mut().zip(table).filter(|(_, r)| r.vaddr != 0) {
            // SAFETY: forwarded from the caller.
            *o = unsafe { Self::from_resource(r, r.size / NET_BUFFER_SIZE, writable) }?;
        }
        Ok(out)
    }

    /// Number of buffers.
    pub fn buffers(&self) -> u64 {
        self.buffers
    }

    /// Index of the buffer at `offset`, which must be 2048-aligned and inside the region.
    #[inline]
    pub fn index(&self, offset: u64) -> Result<usize, BufferError> {
        let index = offset / NET_BUFFER_SIZE;
        match usize::try_from(index) {
            // `index < buffers`, and `buffers * 2048` bytes are mapped, so it fits a usize.
            Ok(i) if offset.is_multiple_of(NET_BUFFER_SIZE) && index < self.buffers => Ok(i),
            _ => Err(self.refused(offset)),
        }
    }

    /// Why [`index`](Self::index) refused `offset`.
    #[cold]
    fn refused(&self, offset: u64) -> BufferError {
        match NetBuffDesc::new(offset, 0).buffer_index(self.buffers) {
            Err(e) => e,
            Ok(_) => BufferError::Misaligned(offset),
        }
    }

    /// The first `len` bytes of the buffer at `offset`: the offset must be 2048-aligned and inside
    /// the region, and `len <= 2048`.
    #[inline]
    pub fn span(&self, offset: u64, len: u16) -> Result<Span<'a>, BufferError> {
        self.buffer(offset, len).map(|(_, s)| s)
    }

    /// [`span`](Self::span) with the buffer's index.
    #[inline]
    pub fn buffer(&self, offset: u64, len: u16) -> Result<(usize, Span<'a>), BufferError> {
        let index = self.index(offset)?;
        if len > MAX_LEN {
            return Err(BufferError::BadLength(len));
        }
        let span = Span {
            // SAFETY: `index * 2048 + len <= buffers * 2048`, inside the mapping.
            ptr: unsafe { self.base.add(index * BUF) },
            len,
            writable: self.writable,
            _mem: PhantomData,
        };
        Ok((index, span))
    }
}

impl<'a> Span<'a> {
    /// The `len` bytes at offset `off` of the region `r` names, read-only here: the Tx virt's
    /// per-frame span, made without re-checking what it checked once at start-up.
    ///
    /// # Safety
    /// `r` was accepted by [`DataRegion::from_resource`] for some number of buffers (so its vaddr
    /// is not 0 and that many buffers are mapped readable for `'a`), and `off + len` lies within
    /// those buffers.
    #[inline(always)]
    pub(crate) unsafe fn in_region(r: &RegionResource, off: u64, len: u16) -> Self {
        // `vaddr + off` is inside a mapping of this address space (the caller's promise).
        #[allow(clippy::cast_possible_truncation)]
        let addr = r.vaddr.wrapping_add(off) as usize;
        Self {
            // SAFETY: a mapped address above the mapping's nonzero start is not 0.
            ptr: unsafe { NonNull::new_unchecked(core::ptr::with_exposed_provenance_mut(addr)) },
            len,
            writable: false,
            _mem: PhantomData,
        }
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// Length in bytes (at most 2048).
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `N` bytes (a header field such as the destination MAC), read with one unaligned
    /// load; `None` when the span is shorter.
    #[inline]
    pub fn head<const N: usize>(&self) -> Option<[u8; N]> {
        // SAFETY: `N <= len` bytes from `ptr` are mapped readable (checked by `span`).
        (usize::from(self.len) >= N).then(|| unsafe { self.ptr.cast::<[u8; N]>().read_unaligned() })
    }

    /// Copy the span's bytes into `out` (as many as fit); returns how many.
    pub fn read(&self, out: &mut [u8]) -> usize {
        let n = usize::from(self.len).min(out.len());
        // SAFETY: `n` bytes from `ptr` are mapped readable (checked by `span`); `out` is private.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), out.as_mut_ptr(), n) };
        n
    }

    /// Copy `data` into the span (as much as fits); returns how many bytes, 0 when the region is
    /// read-only here.
    pub fn write(&self, data: &[u8]) -> usize {
        let n = if self.writable {
            usize::from(self.len).min(data.len())
        } else {
            0
        };
        // SAFETY: `n` bytes from `ptr` are mapped writable (checked by `span` and the flag).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), n) };
        n
    }

    /// Copy `src` into this span (as much as fits); returns how many bytes, 0 when this span is
    /// read-only.
    pub fn copy_from(&self, src: &Span<'_>) -> usize {
        let n = if self.writable {
            self.len.min(src.len)
        } else {
            0
        };
        let n = usize::from(n);
        // SAFETY: both ranges are mapped (checked by `span`), this one writable; `copy` allows a
        // system that maps two regions over the same memory.
        unsafe { core::ptr::copy(src.ptr.as_ptr(), self.ptr.as_ptr(), n) };
        n
    }
}

/// The set of clients holding each buffer of a data region (bit `c` = client `c`; 0 = none), kept
/// in a metadata region (the Rx virtualiser's `buffer_metadata`): a byte per buffer for up to 8
/// clients, an 8-aligned `u64` per buffer for more.
#[derive(Clone, Copy)]
pub enum Holders<'a> {
    /// One byte per buffer: clients 0..8.
    Byte(&'a [AtomicU8]),
    /// One word per buffer: clients 0..64.
    Word(&'a [AtomicU64]),
}

impl<'a> Holders<'a> {
    /// The holder sets of `n` buffers for `clients` clients in a region named in a config. Refused
    /// when the region is not mapped here, or is too small (or misaligned) for `n` sets.
    ///
    /// # Safety
    /// The config describes this component's real mapping, read-write for `'a`, which no other
    /// component maps.
    pub unsafe fn from_resource(
        r: &RegionResource,
        n: usize,
        clients: usize,
    ) -> Result<Self, SetupError> {
        let (base, len) = r.as_raw_parts().ok_or(SetupError::Unmapped)?;
        let width = if clients <= 8 { 1 } else { 8 };
        let needed = n.saturating_mul(width);
        if len < needed || !base.as_ptr().addr().is_multiple_of(width) {
            let (needed, have) = (needed as u64, len as u64);
            return Err(SetupError::RegionTooSmall { needed, have });
        }
        // SAFETY: `width * n <= len` bytes are mapped read-write for 'a, `width`-aligned; the
        // atomics are valid for every bit pattern, and all access goes through them.
        Ok(unsafe {
            match width {
                1 => Self::Byte(core::slice::from_raw_parts(base.as_ptr().cast(), n)),
                _ => Self::Word(core::slice::from_raw_parts(base.as_ptr().cast(), n)),
            }
        })
    }

    /// Buffer `i`'s holders; past the table reads as held by everyone (never free, never
    /// returnable).
    #[inline]
    pub fn get(self, i: usize) -> u64 {
        match self {
            Self::Byte(t) => t.get(i).map_or(u64::MAX, |h| h.load(Relaxed).into()),
            Self::Word(t) => t.get(i).map_or(u64::MAX, |h| h.load(Relaxed)),
        }
    }

    /// Every buffer held by nobody.
    pub fn clear(self) {
        match self {
            Self::Byte(t) => t.iter().for_each(|h| h.store(0, Relaxed)),
            Self::Word(t) => t.iter().for_each(|h| h.store(0, Relaxed)),
        }
    }

    /// Set buffer `i`'s holders (clients above 7 are dropped from a byte table, which only
    /// serves 8 clients).
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    pub fn set(self, i: usize, set: u64) {
        match self {
            Self::Byte(t) => t.get(i).map(|h| h.store(set as u8, Relaxed)),
            Self::Word(t) => t.get(i).map(|h| h.store(set, Relaxed)),
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_checked_and_copies_bounded() {
        let mut mem = vec![0u8; 3 * BUF];
        let base = NonNull::new(mem.as_mut_ptr()).unwrap();
        // SAFETY: `mem` holds 3 buffers and outlives the regions.
        let (rw, ro) = unsafe {
            (
                DataRegion::new(base, 3, true),
                DataRegion::new(base, 3, false),
            )
        };
        assert_eq!(
            rw.span(3 * 2048, 1).err(),
            Some(BufferError::OutOfRange {
                offset: 6144,
                num_buffers: 3
            })
        );
        assert_eq!(rw.span(2047, 1).err(), Some(BufferError::Misaligned(2047)));
        assert_eq!(rw.span(0, 2049).err(), Some(BufferError::BadLength(2049)));
        let s = rw.span(2 * 2048, 2048).unwrap();
        assert_eq!((s.addr() - base.as_ptr().addr(), s.len()), (4096, 2048));
        assert_eq!(
            rw.span(2048, 4).unwrap().write(b"abcdefgh"),
            4,
            "clamped to the span"
        );
        assert_eq!(ro.span(0, 4).unwrap().write(b"zzzz"), 0, "read-only here");
        assert_eq!(
            rw.span(0, 8).unwrap().copy_from(&ro.span(2048, 6).unwrap()),
            6
        );
        let mut out = [0u8; 16];
        assert_eq!(ro.span(0, 8).unwrap().read(&mut out), 8);
        assert_eq!(&out[..8], b"abcd\0\0\0\0");
        let r = RegionResource {
            vaddr: base.as_ptr().addr() as u64,
            size: 3 * 2048,
        };
        assert!(matches!(
            // SAFETY: as above.
            unsafe { DataRegion::from_resource(&r, 4, true) },
            Err(SetupError::RegionTooSmall {
                needed: 8192,
                have: 6144
            })
        ));
        let r0 = RegionResource {
            vaddr: 0,
            size: 4096,
        };
        // SAFETY: nothing is mapped at 0; refused before use.
        let unmapped = unsafe { DataRegion::from_resource(&r0, 1, true) };
        assert!(matches!(unmapped, Err(SetupError::Unmapped)));
    }
}
