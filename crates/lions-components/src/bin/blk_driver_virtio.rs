// SPDX-License-Identifier: BSD-2-Clause
//! `blk_driver_virtio`: the block driver of `qemu_virt_aarch64` (`virtio,mmio`, a
//! `virtio-blk-device`), a seL4 PD.
//!
//! The generic [`BlkDriver`](lions_blk::BlkDriver) over a
//! [`VirtioBlk`](lions_drivers::qemu_virt_aarch64::virtio_blk::VirtioBlk).
//!
//! Config sections: `.device_resources` (region 0: the virtio-mmio slot's page, mapped uncached;
//! region 1: `virtio_rings`, the split virtqueue; region 2: `virtio_requests`, the request
//! headers and status bytes; IRQ 0: the device's interrupt) and `.blk_driver_config` (the
//! connection to the virtualiser). Data buffers are not mapped here: the virtualiser hands the
//! driver I/O addresses, which go straight to the device. QEMU's `virt` board puts the first
//! virtio-mmio device [`SLOT_OFFSET`] bytes into its page (`virtio_mmio@a003e00`).
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Offset of the virtio-mmio register slot in the mapped page (`virtio_mmio@a003e00`).
pub const SLOT_OFFSET: usize = 0xe00;
/// Bytes of one virtio-mmio slot.
pub const SLOT_LEN: usize = 0x200;

#[cfg(target_os = "none")]
mod sel4 {
    use super::{SLOT_LEN, SLOT_OFFSET};
    use lions_blk::{BlkDriver, BlkDriverConfig};
    use lions_drivers::mmio::MmioRegion;
    use lions_drivers::qemu_virt_aarch64::virtio_blk::VirtioBlk;
    use lions_drivers::virtio::DmaRegion;
    use lions_os::DeviceResources;

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
    lions_os::config!(static CONFIG: BlkDriverConfig = ".blk_driver_config");

    use lions_os::startup_failed as fail;

    pub(crate) fn init() -> BlkDriver<'static, VirtioBlk<MmioRegion>> {
        let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
        let config = CONFIG.get().unwrap_or_else(|e| fail(e));
        let irq = resources
            .irq_channel(0)
            .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
        let [regs, rings, requests] = resources.regions() else {
            fail(
                "`.device_resources` needs the `regs`, `virtio_rings` and `virtio_requests` regions",
            )
        };
        // sdfgen 0.35.1 gives the device's own address: the page's vaddr plus the slot's offset
        // in it (a page-aligned vaddr would mean the page itself).
        let (vaddr, len) = regs
            .region
            .as_raw_parts()
            .unwrap_or_else(|| fail("register region missing"));
        let in_page = vaddr.addr().get() % 0x1000;
        let slot = if in_page == 0 { SLOT_OFFSET } else { 0 };
        if in_page + slot != SLOT_OFFSET || len < SLOT_OFFSET + SLOT_LEN {
            fail("register region does not hold the virtio-mmio slot at 0xe00 of its page");
        }
        // SAFETY: the system description maps the device page uncached into this PD only; the
        // slot lies inside it (checked above) and this is its only handle.
        let regs = unsafe { MmioRegion::new(vaddr.add(slot), SLOT_LEN) }
            .unwrap_or_else(|| fail("register slot is not 4-byte aligned"));
        let dma = |r: &lions_os::DeviceRegionResource, what: &str| {
            let (base, len) = r
                .region
                .as_raw_parts()
                .unwrap_or_else(|| fail(format_args!("`{what}` is not mapped")));
            // SAFETY: the region is mapped read-write (uncached) at `base`, `len` bytes, for the
            // PD's life, into this PD only, and this is its only handle; the device reaches it at
            // `io_addr`.
            unsafe { DmaRegion::new(base, len, r.io_addr) }
                .unwrap_or_else(|| fail(format_args!("`{what}` is misaligned")))
        };
        let rings = dma(rings, "virtio_rings");
        let requests = dma(requests, "virtio_requests");
        let dev = VirtioBlk::new(regs, rings, requests).unwrap_or_else(|e| fail(e));
        // SAFETY: the system description maps the config's regions (storage info, request and
        // response queues) before `init`, shared only with the virtualiser; this PD makes one
        // handle of each.
        let mut driver = unsafe { BlkDriver::new(dev, config, irq) }.unwrap_or_else(|e| fail(e));
        driver.init().unwrap_or_else(|e| fail(e));
        driver
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "blk_driver_virtio drives virtio-blk of qemu_virt_aarch64 under seL4; the host board's \
         blk driver is blk_driver_host"
    );
    std::process::ExitCode::FAILURE
}
