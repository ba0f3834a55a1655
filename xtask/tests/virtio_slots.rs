// SPDX-License-Identifier: BSD-2-Clause
//! The virtio drivers find their device in whichever virtio-mmio slot of its page the system
//! puts it: for every virtio driver blob sdfgen 0.35.1 wrote in `interop/fixtures`, including
//! `virtio_sddf` (sDDF's own QEMU slots: the NIC at `virtio_mmio@a000000`, the disk at
//! `virtio_mmio@a000200`, one page for both), the address `net_driver_virtio` and
//! `blk_driver_virtio` compute with [`register_slot`] is the device's own: its offset in the page
//! plus the page's physical address (`io_addr`) is the device-tree node's address.
#![allow(clippy::unwrap_used)]

use lions_drivers::virtio::{SLOT_LEN, register_slot};
use lions_os::{Config, DeviceResources};
use lions_sdf::AlignedBlob;

/// `(fixture system, driver PD, the device's address in the device tree)`.
const DEVICES: [(&str, &str, u64); 4] = [
    ("virtio_sddf", "net_driver", 0x0a00_0000),
    ("virtio_sddf", "blk_driver", 0x0a00_0200),
    ("net", "net_driver", 0x0a00_3e00),
    ("blk", "blk_driver", 0x0a00_3c00),
];

#[test]
fn the_register_slot_is_the_devices_own_in_every_sdfgen_system() {
    for (system, pd, dt_addr) in DEVICES {
        let path = xtask::workspace_root()
            .join("interop/fixtures")
            .join(system)
            .join(format!("{pd}_device_resources.data"));
        let blob = AlignedBlob::read(&path).unwrap();
        let res = DeviceResources::from_blob(blob.bytes()).unwrap();
        let regs = &res.regions()[0];
        let slot = register_slot(regs)
            .unwrap_or_else(|e| panic!("{system}/{pd}: {e}"))
            .addr()
            .get() as u64;
        assert_eq!(slot, regs.region.vaddr, "{system}/{pd}");
        let in_page = slot % 0x1000;
        assert_eq!(regs.io_addr + in_page, dt_addr, "{system}/{pd}");
        assert!(
            in_page + SLOT_LEN as u64 <= regs.region.size,
            "{system}/{pd}"
        );
    }
}

#[test]
fn sddf_slots_share_one_page_at_offsets_0_and_0x200() {
    // The case the former fixed offset (0xe00) refused: a page-aligned vaddr is slot 0 itself,
    // and slot 1 is 0x200 into the same page.
    let offset = |pd: &str| {
        let path = xtask::workspace_root()
            .join("interop/fixtures/virtio_sddf")
            .join(format!("{pd}_device_resources.data"));
        let blob = AlignedBlob::read(&path).unwrap();
        let res = DeviceResources::from_blob(blob.bytes()).unwrap();
        let regs = &res.regions()[0];
        (
            regs.io_addr,
            register_slot(regs).unwrap().addr().get() % 0x1000,
        )
    };
    assert_eq!(offset("net_driver"), (0x0a00_0000, 0x000));
    assert_eq!(offset("blk_driver"), (0x0a00_0000, 0x200));
}
