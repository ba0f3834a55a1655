// SPDX-License-Identifier: BSD-2-Clause
//! `net_virt_tx_priority`: the network Tx virtualiser ([`lions_net::VirtTx`]) with strict
//! priority shaping ([`lions_net::StrictPriority`]): client 0 first, then client 1, and so on; a
//! client is served only when no client before it has a frame waiting.
//!
//! Config sections: those of `net_virt_tx` (`.net_virt_tx_config`, and `.net_virt_tx_policy` and
//! `.timer_client_config`, which this image carries but does not read: its policy is fixed), so
//! either image serves the same PD: `cargo xtask swap <example> net_virt_tx net_virt_tx_priority` replaces a running
//! round-robin Tx virt with this one (and `... net_virt_tx net_virt_tx` back), the new one
//! taking over the queues as the old one left them ([`lions_net::VirtTx::resume`]).
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{NetTxPolicyConfig, NetVirtTxConfig, PlatformCache, StrictPriority, VirtTx};
use lions_os::MAX_CLIENTS;
use lions_timer::TimerClientConfig;

lions_os::config!(static CONFIG: NetVirtTxConfig = ".net_virt_tx_config");
// `net_virt_tx`'s other sections, so `xtask swap` can write the PD's whole config into this image.
lions_os::config!(static _POLICY: NetTxPolicyConfig = ".net_virt_tx_policy");
lions_os::config!(static _TIMER: TimerClientConfig = ".timer_client_config");

use lions_os::startup_failed as fail;

fn init() -> VirtTx<'static, StrictPriority> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    // Client c gets priority MAX_CLIENTS - c: the lower the index, the higher.
    let prio: [u8; MAX_CLIENTS] =
        core::array::from_fn(|c| u8::try_from(MAX_CLIENTS - c).unwrap_or(u8::MAX));
    let mut virt = VirtTx::new(config, StrictPriority::new(&prio), PlatformCache::default())
        .unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() > 0 {
        // Restarted or swapped in: rebuild what is at the driver from the driver's queues.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
