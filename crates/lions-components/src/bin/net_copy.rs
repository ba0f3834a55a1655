// SPDX-License-Identifier: BSD-2-Clause
//! `net_copy`: the network copier ([`lions_net::Copier`]), one per client.
//!
//! Config section: `.net_copy_config` (the queues to the Rx virtualiser or vswitch, the source
//! data regions by `oid`, the queues to the client and the client's Rx data region). At start it
//! hands the client all its Rx buffers; then it copies each frame from the shared Rx DMA region
//! into a client buffer, or drops it when the client has none free, and returns the DMA buffer at
//! once.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{Copier, NetCopyConfig};
use lions_os::{ChannelSet, Handler};

lions_os::config!(static CONFIG: NetCopyConfig = ".net_copy_config");

use lions_os::startup_failed as fail;

fn init() -> Copier<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        return Copier::new(config).unwrap_or_else(|e| fail(e));
    }
    // Restarted: take the queues over as they are, hand back the DMA buffers held, serve.
    let mut copier = Copier::resume(config).unwrap_or_else(|e| fail(e));
    copier
        .notified(ChannelSet::EMPTY)
        .unwrap_or_else(|e| fail(e));
    copier
}

lions_os::protection_domain!(init);
