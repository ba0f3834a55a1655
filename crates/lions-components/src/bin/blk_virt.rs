// SPDX-License-Identifier: BSD-2-Clause
//! `blk_virt`: the block virtualiser ([`lions_blk::BlkVirt`]).
//!
//! Config section: `.blk_virt_config` (the driver's connection and data region, each client's
//! connection, data region and partition). At start it waits for the driver's `ready`, reads the
//! partition table (MBR or GPT) through the driver and publishes each client's partition; then it
//! checks, translates and passes on the clients' requests.
//!
//! Its state (about 33 KB: 1024 driver-request slots, 64 client connections, the partition
//! table) is built in place in a static ([`BlkVirt::new_in`]) and served from there, so it is
//! never on the PD's stack, which keeps the default size.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_blk::{BlkVirt, BlkVirtConfig};
use lions_os::cell::StaticSlot;

lions_os::config!(static CONFIG: BlkVirtConfig = ".blk_virt_config");

/// Where the virt lives.
static VIRT: StaticSlot<BlkVirt<'static>> = StaticSlot::new();

use lions_os::startup_failed as fail;

fn init() -> &'static mut BlkVirt<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let slot = VIRT.take().unwrap_or_else(|| fail("init ran twice"));
    let virt = BlkVirt::new_in(slot, config).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        virt.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: rebuild what each driver id stands for from the queues, then serve.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
