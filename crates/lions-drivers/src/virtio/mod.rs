// SPDX-License-Identifier: BSD-2-Clause
//! virtio 1.2 (non-legacy) devices over the virtio-mmio transport: the pieces every virtio driver
//! here shares (blk now; net and console can reuse them).
//!
//! - [`DmaRegion`]: memory shared with the device, mapped here at one address and seen by the
//!   device at its I/O address; little-endian volatile accesses at checked offsets.
//! - [`mmio::VirtioMmio`]: the virtio-mmio register block (version 2): probe (magic, version,
//!   device id), the status handshake (reset, ACKNOWLEDGE, DRIVER, feature negotiation,
//!   FEATURES_OK read back, DRIVER_OK; FAILED on the way out), queue setup, notification,
//!   interrupt acknowledgement and generation-checked config space reads.
//! - [`queue::SplitQueue`]: a split virtqueue (descriptor table, available ring, used ring) in one
//!   [`DmaRegion`]: chains added with one Release publication of the available index, used
//!   entries taken after an Acquire fence and checked (an id that is not a chain we gave the
//!   device is skipped, a used index further ahead than the queue size stops the queue).
//! - [`slot::register_slot`]: the device's register slot from the driver's `regs` region as
//!   sdfgen writes it (the region's vaddr includes the slot's offset in its page).
//!
//! Everything here is written against [`Mmio`](crate::mmio::Mmio) and [`DmaRegion`], so the host
//! tests run it against a device model that processes the rings in a byte buffer standing in for
//! DMA memory (`model`, test-only).
//!
//! **Coherency**: the rings are expected in memory the device sees coherently (QEMU's virtio
//! devices; seL4 maps `virtio_rings` uncached in sDDF's systems). Ordering between our ring writes
//! and the device is by `core::sync::atomic` fences (`dmb ish` on aarch64, what Linux uses for
//! virtio with weak barriers).

use core::ptr::NonNull;

#[cfg(test)]
mod blk_tests;
pub mod mmio;
#[cfg(test)]
pub(crate) mod model;
pub mod queue;
pub mod slot;

pub use mmio::{VirtioError, VirtioMmio};
pub use queue::{Buffer, SplitQueue, Used};
pub use slot::{SLOT_LEN, SlotError, register_slot};

/// Memory shared with a device: mapped in this component at `base`, seen by the device at
/// `io_addr`.
#[derive(Debug)]
pub struct DmaRegion {
    base: NonNull<u8>,
    len: usize,
    io_addr: u64,
}

impl DmaRegion {
    /// The region of `len` bytes at `base` (16-byte aligned, as virtqueue descriptor tables need),
    /// whose device address is `io_addr`; `None` when misaligned or when `io_addr + len` overflows.
    ///
    /// # Safety
    /// `base..base + len` is mapped read-write in this address space while the region (and
    /// anything built from it) lives, and nothing in this component other than this handle reads
    /// or writes it (the device does, which is the point).
    pub unsafe fn new(base: NonNull<u8>, len: usize, io_addr: u64) -> Option<Self> {
        let fits = io_addr.checked_add(len as u64).is_some();
        (fits && base.as_ptr().align_offset(16) == 0).then_some(Self { base, len, io_addr })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of byte `offset`.
    pub fn io_addr(&self, offset: usize) -> u64 {
        self.io_addr + offset as u64
    }

    /// The `size`-byte, `size`-aligned field at `offset`.
    ///
    /// # Panics
    /// If it is misaligned or not inside the region: a driver bug (offsets come from layouts the
    /// driver computed and checked against the region's length).
    fn at(&self, offset: usize, size: usize) -> *mut u8 {
        let inside = offset.checked_add(size).is_some_and(|end| end <= self.len);
        assert!(
            inside && offset.is_multiple_of(size),
            "DMA access of {size} bytes at {offset:#x} outside a {:#x}-byte region",
            self.len
        );
        self.base.as_ptr().wrapping_add(offset)
    }

    /// Read the byte at `offset`.
    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: inside the mapped region (checked by `at`); volatile because the device writes
        // it; any bits are a valid u8.
        unsafe { self.at(offset, 1).read_volatile() }
    }

    /// Read the little-endian `u16` at `offset` (2-aligned).
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as in `read8`, and aligned (checked by `at`).
        u16::from_le(unsafe { self.at(offset, 2).cast::<u16>().read_volatile() })
    }

    /// Read the little-endian `u32` at `offset` (4-aligned).
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read16`.
        u32::from_le(unsafe { self.at(offset, 4).cast::<u32>().read_volatile() })
    }

    /// Read the little-endian `u64` at `offset` (8-aligned).
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read16`.
        u64::from_le(unsafe { self.at(offset, 8).cast::<u64>().read_volatile() })
    }

    /// Write the byte at `offset`.
    pub fn write8(&mut self, offset: usize, v: u8) {
        // SAFETY: inside the mapped region (checked by `at`), which this handle alone writes in
        // this component.
        unsafe { self.at(offset, 1).write_volatile(v) }
    }

    /// Write `v` little-endian at `offset` (2-aligned).
    pub fn write16(&mut self, offset: usize, v: u16) {
        // SAFETY: as in `write8`, and aligned (checked by `at`).
        unsafe { self.at(offset, 2).cast::<u16>().write_volatile(v.to_le()) }
    }

    /// Write `v` little-endian at `offset` (4-aligned).
    pub fn write32(&mut self, offset: usize, v: u32) {
        // SAFETY: as in `write16`.
        unsafe { self.at(offset, 4).cast::<u32>().write_volatile(v.to_le()) }
    }

    /// Write `v` little-endian at `offset` (8-aligned).
    pub fn write64(&mut self, offset: usize, v: u64) {
        // SAFETY: as in `write16`.
        unsafe { self.at(offset, 8).cast::<u64>().write_volatile(v.to_le()) }
    }
}
