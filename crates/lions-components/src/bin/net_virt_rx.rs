// SPDX-License-Identifier: BSD-2-Clause
//! `net_virt_rx`: the network Rx virtualiser ([`lions_net::VirtRx`]).
//!
//! Config section: `.net_virt_rx_config` (the driver's Rx queues, the Rx DMA region with its device
//! address, the reference-count region, and each client's copier queues with its MAC addresses).
//! At start it hands every DMA buffer to the driver; then it delivers frames by destination MAC,
//! broadcasts to every client, and returns unmatched frames to the driver at once. Cache
//! maintenance is the target's default ([`lions_net::PlatformCache`]).
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{NetVirtRxConfig, PlatformCache, VirtRx};

lions_os::config!(static CONFIG: NetVirtRxConfig = ".net_virt_rx_config");

use lions_os::startup_failed as fail;

fn init() -> VirtRx<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let mut virt = VirtRx::new(config, PlatformCache::default()).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        virt.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: the holder sets and queues in shared memory are the state to take over.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
