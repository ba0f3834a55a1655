// SPDX-License-Identifier: BSD-2-Clause
//! Where a virtio-mmio device's registers are, from the driver's `regs` device region.
//!
//! A virtio-mmio transport slot is [`SLOT_LEN`] bytes, and several share one 4 KiB page (QEMU's
//! `virt` board packs its 32 slots eight to a page: `virtio_mmio@a000000`, `@a000200`, ...,
//! `@a003e00`). seL4 maps whole pages, so the driver's `regs` region is the page that holds the
//! slot. sdfgen 0.35.1 writes that region into `device_resources_t` as:
//!
//! - `vaddr`: the page's address in the driver **plus the slot's offset in its page** (the device
//!   tree `reg` address modulo 4 KiB): the address of the device's own registers;
//! - `size`: the size of the mapped region, counted from the start of the page;
//! - `io_addr`: the page's physical address.
//!
//! So the slot is at `vaddr` whatever its offset (sDDF's QEMU systems use the NIC at
//! `virtio_mmio@a000000` and the disk at `virtio_mmio@a000200`; a lone device QEMU places at
//! `virtio_mmio@a003e00`). [`register_slot`] checks that the slot lies inside the mapping and
//! returns its address.

use core::ptr::NonNull;
use lions_os::DeviceRegionResource;

/// Bytes of one virtio-mmio transport slot: registers up to 0x100, device config after.
pub const SLOT_LEN: usize = 0x200;
/// Granule of a device mapping (the Arm small page).
pub const PAGE_SIZE: usize = 0x1000;

/// Why a `regs` region does not hold a usable virtio-mmio slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// The region is not mapped (address 0, or not representable here).
    Unmapped,
    /// The slot's address is not 4-byte aligned (registers are 32-bit).
    Misaligned(usize),
    /// The slot (`offset` into its page, [`SLOT_LEN`] bytes) does not fit the `size`-byte mapping.
    OutsideMapping {
        /// The slot's offset from the start of the mapping.
        offset: usize,
        /// Bytes mapped from the start of the page.
        size: usize,
    },
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unmapped => f.write_str("the virtio-mmio `regs` region is not mapped"),
            Self::Misaligned(a) => {
                write!(f, "virtio-mmio slot address {a:#x} is not 4-byte aligned")
            }
            Self::OutsideMapping { offset, size } => write!(
                f,
                "virtio-mmio slot at {offset:#x} into its page ({SLOT_LEN:#x} bytes) does not fit \
                 the {size:#x}-byte `regs` mapping"
            ),
        }
    }
}

impl core::error::Error for SlotError {}

/// The address of the device's register slot in the driver's `regs` region (see the module docs):
/// the region's `vaddr`, checked to be 4-byte aligned and to leave [`SLOT_LEN`] bytes inside the
/// page-aligned mapping it points into.
pub fn register_slot(regs: &DeviceRegionResource) -> Result<NonNull<u8>, SlotError> {
    let (vaddr, size) = regs.region.as_raw_parts().ok_or(SlotError::Unmapped)?;
    let addr = vaddr.addr().get();
    if addr % 4 != 0 {
        return Err(SlotError::Misaligned(addr));
    }
    let offset = addr % PAGE_SIZE;
    if offset.checked_add(SLOT_LEN).is_none_or(|end| end > size) {
        return Err(SlotError::OutsideMapping { offset, size });
    }
    Ok(vaddr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lions_os::RegionResource;

    fn regs(vaddr: u64, size: u64) -> DeviceRegionResource {
        DeviceRegionResource {
            region: RegionResource { vaddr, size },
            io_addr: 0x0a00_0000,
        }
    }

    fn slot(vaddr: u64, size: u64) -> Result<usize, SlotError> {
        register_slot(&regs(vaddr, size)).map(|p| p.addr().get())
    }

    /// Every slot of a page, as sdfgen writes them: sDDF's NIC (slot 0, `virtio_mmio@a000000`)
    /// and disk (slot 1, `@a000200`), the interop DTS's blk (`@a003c00`) and QEMU's lone device
    /// (`@a003e00`): the registers are at the region's vaddr itself.
    #[test]
    fn the_slot_is_at_the_regions_vaddr_for_every_offset_in_the_page() {
        for in_page in (0..PAGE_SIZE).step_by(SLOT_LEN) {
            let vaddr = 0x2000_0000 + in_page;
            assert_eq!(slot(vaddr as u64, 0x1000), Ok(vaddr), "{in_page:#x}");
        }
        assert_eq!(slot(0x2000_0000, 0x1000), Ok(0x2000_0000));
        assert_eq!(slot(0x2000_0200, 0x1000), Ok(0x2000_0200));
        assert_eq!(slot(0x3000_0e00, 0x1000), Ok(0x3000_0e00));
    }

    #[test]
    fn a_slot_outside_the_mapping_or_misaligned_is_refused() {
        // The last 0x100 bytes of the page cannot hold a slot.
        assert_eq!(
            slot(0x2000_0f00, 0x1000),
            Err(SlotError::OutsideMapping {
                offset: 0xf00,
                size: 0x1000
            })
        );
        // A mapping too small for the slot at its offset.
        assert_eq!(
            slot(0x2000_0200, 0x300),
            Err(SlotError::OutsideMapping {
                offset: 0x200,
                size: 0x300
            })
        );
        assert_eq!(slot(0x2000_0200, 0x400), Ok(0x2000_0200));
        assert_eq!(
            slot(0x2000_0202, 0x1000),
            Err(SlotError::Misaligned(0x2000_0202))
        );
        assert_eq!(slot(0, 0x1000), Err(SlotError::Unmapped));
    }
}
