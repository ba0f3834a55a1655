// SPDX-License-Identifier: BSD-2-Clause
//! `blk_driver_host`: the block driver of the host board (`lions,host-blk`).
//!
//! The generic [`BlkDriver`] over a [`HostBlk`]: a raw disk image file.
//!
//! - `LIONS_HOST_BLK_IMAGE` (required): the image's path. Its size rounded down to 4 KiB is the
//!   disk; it may hold an MBR or GPT partition table for the virtualiser.
//! - `LIONS_HOST_BLK_READ_ONLY` (optional): set to anything but empty or `0` to open the image
//!   read-only; the storage info then says so and writes are refused.
//!
//! **DMA on the host board** is identity: the metaprogram maps the virtualiser's data region
//! (`blk_driver_data`) and every client's data region into this PD at their `phys_addr`. Every
//! shared region mapped here that is not one of this PD's own connection regions (storage info,
//! request and response queues) becomes a DMA window; a request outside them is answered
//! `ErrIo`. Without any window (a metaprogram that did not map them) a warning is printed at
//! start and every transfer fails.
//!
//! Config sections: `.device_resources` (its first IRQ is the completion eventfd's channel; no
//! regions) and `.blk_driver_config` (the connection to the virtualiser).

use lions_blk::{BlkDriver, BlkDriverConfig};
use lions_drivers::host::blk::{HostBlk, shared_regions};
use lions_os::DeviceResources;
use std::path::Path;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: BlkDriverConfig = ".blk_driver_config");

/// Names the image file.
const IMAGE_ENV: &str = "LIONS_HOST_BLK_IMAGE";
/// Opens it read-only when set (not empty, not `0`).
const READ_ONLY_ENV: &str = "LIONS_HOST_BLK_READ_ONLY";

use lions_os::startup_failed as fail;

fn init() -> BlkDriver<'static, HostBlk> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    let path = std::env::var_os(IMAGE_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            fail(format_args!(
                "{IMAGE_ENV} names no disk image (make one, e.g. examples/fileio/make-disk.sh, \
                 and set {IMAGE_ENV}=<path> when you start the system)"
            ))
        });
    let read_only = std::env::var_os(READ_ONLY_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let mut dev = HostBlk::open(Path::new(&path), read_only).unwrap_or_else(|e| {
        fail(format_args!(
            "{}: {e} (the disk image {IMAGE_ENV} names; examples/fileio/make-disk.sh makes one)",
            path.to_string_lossy()
        ))
    });
    let conn = &config.config().virt;
    let own = [conn.storage_info, conn.req_queue, conn.resp_queue];
    let mut windows = 0;
    for (start, len, _) in shared_regions().unwrap_or_else(|e| fail(e)) {
        if own
            .iter()
            .any(|r| start < r.vaddr.saturating_add(r.size) && r.vaddr < start.saturating_add(len))
        {
            continue;
        }
        // SAFETY: a shared region the launcher mapped for this PD that is not one of its queues
        // or its storage-info page: the data regions it reaches by I/O address (identity on the
        // host board). Nothing in this process makes a Rust reference to them.
        unsafe { dev.add_dma_window(start, len) };
        windows += 1;
    }
    if windows == 0 {
        eprintln!(
            "{}: no data region is mapped into this PD: every transfer will fail",
            lions_os::pd_name()
        );
    }
    dev.attach_irq(irq).unwrap_or_else(|e| fail(e));
    let mut driver = BlkDriver::new(dev, config, irq).unwrap_or_else(|e| fail(e));
    driver.init().unwrap_or_else(|e| fail(e));
    driver
}

lions_os::protection_domain!(init);
