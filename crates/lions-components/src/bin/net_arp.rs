// SPDX-License-Identifier: BSD-2-Clause
//! `net_arp`: the ARP responder ([`lions_net::ArpResponder`]), the paper's first broadcast scheme.
//!
//! Config sections: `.net_client_config` (sdfgen's: it is an ordinary net client behind its own
//! copier) and `.net_arp_config` ([`lions_net::NetArpConfig`], our own, written by `lions_meta`'s
//! `net.arp_responder(...)`): the IPv4 address and MAC of every client it answers for. The same
//! call makes it the only client the Rx virt hands broadcasts to
//! ([`lions_net::NetRxBroadcastConfig`]). It answers each ARP request for a table address with
//! the owner's MAC and ignores every other frame.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{ArpResponder, NetArpConfig, NetClientConfig};
use lions_os::startup_failed as fail;

lions_os::config!(static CONFIG: NetClientConfig = ".net_client_config");
lions_os::config!(static TABLE: NetArpConfig = ".net_arp_config");

fn init() -> ArpResponder<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let table = TABLE.get().unwrap_or_else(|e| fail(e)).table();
    ArpResponder::new(config, table).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
