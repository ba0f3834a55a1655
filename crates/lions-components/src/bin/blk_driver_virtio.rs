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
//! driver I/O addresses, which go straight to the device. The `regs` vaddr is the slot's own
//! address, so any slot of the page works ([`register_slot`](lions_drivers::virtio::register_slot)):
//! sDDF's QEMU systems put the disk at `virtio_mmio@a000200`, our examples at `virtio_mmio@a003e00`.
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use lions_blk::{BlkDriver, BlkDriverConfig};
    use lions_drivers::mmio::MmioRegion;
    use lions_drivers::qemu_virt_aarch64::virtio_blk::VirtioBlk;
    use lions_drivers::virtio::DmaRegion;
    use lions_drivers::virtio::{SLOT_LEN, register_slot};
    use lions_os::DeviceResources;

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
    lions_os::config!(static CONFIG: BlkDriverConfig = ".blk_driver_config");

    use lions_os::startup_failed as fail;

    pub(crate) fn init() -> BlkDriver<'static, VirtioBlk<MmioRegion>> {
        let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
        let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
        let irq = resources
            .irq_channel(0)
            .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
        let [regs, rings, requests] = resources.regions() else {
            fail(
                "`.device_resources` needs the `regs`, `virtio_rings` and `virtio_requests` regions",
            )
        };
        // sdfgen gives the device's own address: the page's vaddr plus the slot's offset in it,
        // whichever of the page's slots the device is in (sDDF's systems use 0x000 and 0x200).
        let slot = register_slot(regs).unwrap_or_else(|e| fail(e));
        // SAFETY: the system description maps the device page uncached into this PD only;
        // `register_slot` checked that the slot lies inside that mapping, and this is its only
        // handle.
        let regs = unsafe { MmioRegion::new(slot, SLOT_LEN) }
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
        let mut driver = BlkDriver::new(dev, config, irq).unwrap_or_else(|e| fail(e));
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
