// SPDX-License-Identifier: BSD-2-Clause
//! `net_driver_virtio`: the Ethernet driver of `qemu_virt_aarch64` (`virtio,mmio`, a
//! `virtio-net-device`), a seL4 PD.
//!
//! The generic [`EthDriver`](lions_net::EthDriver) over a
//! [`VirtioNet`](lions_drivers::qemu_virt_aarch64::virtio_net::VirtioNet).
//!
//! Config sections: `.device_resources` (region 0: the page holding the virtio-mmio slot, mapped
//! uncached, its vaddr the slot's own address; region 1: `virtio_rings`, 64 KiB of DMA memory;
//! IRQ 0: the device's interrupt) and `.net_driver_config` (the queues to the virtualisers). Any
//! slot of the page works ([`register_slot`](lions_drivers::virtio::register_slot)): sDDF's QEMU
//! systems put the NIC at `virtio_mmio@a000000`, our examples at `virtio_mmio@a003e00`.
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use lions_drivers::mmio::MmioRegion;
    use lions_drivers::qemu_virt_aarch64::virtio_net::{VirtioNet, split_rings};
    use lions_drivers::virtio::{SLOT_LEN, register_slot};
    use lions_net::{EthDriver, NetDriverConfig};
    use lions_os::DeviceResources;

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
    lions_os::config!(static CONFIG: NetDriverConfig = ".net_driver_config");

    use lions_os::startup_failed as fail;

    pub(crate) fn init() -> EthDriver<'static, VirtioNet<MmioRegion>> {
        let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
        let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
        let irq = resources
            .irq_channel(0)
            .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
        let [regs, rings] = resources.regions() else {
            fail("`.device_resources` needs the `regs` and `virtio_rings` regions")
        };
        // sdfgen gives the device's own address: the page's vaddr plus the slot's offset in it,
        // whichever of the page's slots the device is in (sDDF's systems use 0x000 and 0x200).
        let slot = register_slot(regs).unwrap_or_else(|e| fail(e));
        // SAFETY: the system description maps the device page uncached into this PD only;
        // `register_slot` checked that the slot lies inside that mapping, and this is its only
        // handle.
        let regs = unsafe { MmioRegion::new(slot, SLOT_LEN) }
            .unwrap_or_else(|| fail("register slot is not 4-byte aligned"));
        let (base, len) = rings
            .region
            .as_raw_parts()
            .unwrap_or_else(|| fail("`virtio_rings` is not mapped"));
        // SAFETY: `virtio_rings` is mapped read-write (uncached) at `base`, `len` bytes, for the
        // PD's life, into this PD only; the device reaches it at `io_addr`.
        let (rx, tx, hdrs) = unsafe { split_rings(base, len, rings.io_addr) }
            .unwrap_or_else(|| fail("`virtio_rings` too small or misaligned"));
        let dev = VirtioNet::new(regs, rx, tx, hdrs).unwrap_or_else(|e| fail(e));
        let mut driver = EthDriver::new(dev, config, irq).unwrap_or_else(|e| fail(e));
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
        "net_driver_virtio drives virtio-net of qemu_virt_aarch64 under seL4; the host board's \
         net drivers are net_driver_host_tap and net_driver_host_user"
    );
    std::process::ExitCode::FAILURE
}
