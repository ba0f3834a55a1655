// SPDX-License-Identifier: BSD-2-Clause
//! The one MMIO abstraction every register-level driver here uses.
//!
//! A driver is generic over [`Mmio`]: 32-bit reads and writes at byte offsets from the start of the
//! device's register block. On a board it gets an [`MmioRegion`] (volatile accesses through a
//! pointer into the device mapping); in a host test it gets a register model that behaves like the
//! device (FIFOs, flag bits, interrupt status), so everything but the load and store instructions
//! is tested without hardware.

use core::ptr::NonNull;

/// 32-bit register access at byte offsets into one device's register block.
///
/// Both methods take `&mut self`: a register read can have side effects (reading a UART's data
/// register pops its receive FIFO), and one driver owns its device.
pub trait Mmio {
    /// Read the 32-bit register at byte `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Write `value` to the 32-bit register at byte `offset`.
    fn write32(&mut self, offset: usize, value: u32);
}

impl<M: Mmio + ?Sized> Mmio for &mut M {
    fn read32(&mut self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        (**self).write32(offset, value);
    }
}

/// A device's register block mapped into this component, accessed with volatile loads and stores.
#[derive(Debug)]
pub struct MmioRegion {
    base: NonNull<u32>,
    len: usize,
}

impl MmioRegion {
    /// The register block of `len` bytes at `base`, or `None` when `base` is not 4-byte aligned.
    ///
    /// # Safety
    /// `base..base + len` is a device (uncached) mapping in this address space for as long as the
    /// returned value (and anything built from it) lives, and nothing else reads or writes it: the
    /// handle is the device's only owner. On a Microkit board that is the driver's `regs` region,
    /// mapped `cached="false"`, whose address and size come from `.device_resources`.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Option<Self> {
        base.cast::<u32>().is_aligned().then_some(Self {
            base: base.cast(),
            len,
        })
    }

    /// Size of the block in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty (no register can be accessed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The register at `offset`.
    ///
    /// # Panics
    /// If `offset` is not 4-byte aligned or the register lies beyond the block: a driver bug (its
    /// offsets are constants; drivers check the block's size when they are built).
    fn reg(&self, offset: usize) -> *mut u32 {
        let inside = offset.checked_add(4).is_some_and(|end| end <= self.len);
        assert!(
            offset.is_multiple_of(4) && inside,
            "MMIO access at {offset:#x} outside a {:#x}-byte register block",
            self.len
        );
        self.base.as_ptr().wrapping_byte_add(offset)
    }
}

impl Mmio for MmioRegion {
    fn read32(&mut self, offset: usize) -> u32 {
        let reg = self.reg(offset);
        // SAFETY: `reg` is 4-byte aligned and inside the mapped block (checked by `reg`); the
        // constructor's contract makes it a device register only this handle accesses.
        unsafe { reg.read_volatile() }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        let reg = self.reg(offset);
        // SAFETY: as in `read32`.
        unsafe { reg.write_volatile(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_region_reads_and_writes_its_words() {
        let mut words = [0u32; 4];
        let base = NonNull::from(&mut words).cast::<u8>();
        // SAFETY: `words` stands in for a device block; only `r` touches it while `r` lives.
        let mut r = unsafe { MmioRegion::new(base, 16) }.unwrap();
        r.write32(8, 0xdead_beef);
        assert_eq!(r.read32(8), 0xdead_beef);
        assert_eq!(r.read32(12), 0);
        assert_eq!((r.len(), r.is_empty()), (16, false));
        assert_eq!(words, [0, 0, 0xdead_beef, 0]);
    }

    #[test]
    fn misaligned_base_is_refused() {
        let mut words = [0u32; 2];
        let base = NonNull::from(&mut words).cast::<u8>();
        let odd = NonNull::new(base.as_ptr().wrapping_add(2)).unwrap();
        // SAFETY: as above; the region is never used.
        let r = unsafe { MmioRegion::new(odd, 4) };
        assert!(r.is_none());
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn access_past_the_block_is_a_bug() {
        let mut words = [0u32; 2];
        let base = NonNull::from(&mut words).cast::<u8>();
        // SAFETY: as above.
        let mut r = unsafe { MmioRegion::new(base, 8) }.unwrap();
        r.read32(8);
    }
}
