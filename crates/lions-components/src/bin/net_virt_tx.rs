// SPDX-License-Identifier: BSD-2-Clause
//! `net_virt_tx`: the network Tx virtualiser ([`lions_net::VirtTx`]) with round-robin shaping.
//!
//! Config section: `.net_virt_tx_config` (the driver's Tx queues, and each client's Tx queues
//! with the data regions it may send from and their device addresses). It validates every client
//! descriptor (bad ones go back to their client), cleans the frame from the cache, translates it
//! to a device address and hands it to the driver, one frame per ready client in turn
//! ([`lions_net::RoundRobin`]). A system that wants another [`lions_net::TxPolicy`] (in order,
//! strict priority, a bandwidth limit) uses its own copy of this ten-line wrapper.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{NetVirtTxConfig, PlatformCache, RoundRobin, VirtTx};

lions_os::config!(static CONFIG: NetVirtTxConfig = ".net_virt_tx_config");

use lions_os::startup_failed as fail;

fn init() -> VirtTx<'static, RoundRobin> {
    let config = CONFIG.get().unwrap_or_else(|e| fail(e));
    // SAFETY: the system description maps every region this config names at its vaddr (queues
    // read-write, client data regions at least readable) before `init` runs and for the PD's
    // whole life, each queue shared only with the peer at its other end; this PD makes one handle
    // per queue end.
    let mut virt = unsafe { VirtTx::new(config, RoundRobin::default(), PlatformCache::default()) }
        .unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() > 0 {
        // Restarted (or swapped in): rebuild the per-client counts from the driver's queues.
        // SAFETY: as above.
        unsafe { virt.resume() }.unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
