// SPDX-License-Identifier: BSD-2-Clause
//! `net_virt_rx`: the network Rx virtualiser ([`lions_net::VirtRx`]).
//!
//! Config section: `.net_virt_rx_config` (the driver's Rx queues, the Rx DMA region with its device
//! address, the reference-count region, and each client's copier queues with its MAC addresses);
//! `.net_virt_rx_broadcast` ([`lions_net::NetRxBroadcastConfig`], our own, optional): the clients
//! that receive broadcasts (all when absent, as sDDF). At start it hands every DMA buffer to the
//! driver; then it delivers frames by destination MAC, broadcasts to the broadcast clients, and
//! returns unmatched frames to the driver at once. Cache
//! maintenance is the target's default ([`lions_net::PlatformCache`]).
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{NetRxBroadcastConfig, NetVirtRxConfig, PlatformCache, VirtRx};

lions_os::config!(static CONFIG: NetVirtRxConfig = ".net_virt_rx_config");
lions_os::config!(static BROADCAST: NetRxBroadcastConfig = ".net_virt_rx_broadcast");

use lions_os::startup_failed as fail;

fn init() -> VirtRx<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let mut virt = VirtRx::new(config, PlatformCache::default()).unwrap_or_else(|e| fail(e));
    virt.set_broadcast_clients(
        NetRxBroadcastConfig::clients_or_all(BROADCAST.get()).unwrap_or_else(|e| fail(e)),
    );
    if lions_os::incarnation() == 0 {
        virt.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: the holder sets and queues in shared memory are the state to take over.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
