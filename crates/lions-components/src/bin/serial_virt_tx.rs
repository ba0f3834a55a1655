// SPDX-License-Identifier: BSD-2-Clause
//! `serial_virt_tx`: the serial Tx virtualiser ([`lions_serial::VirtTx`]).
//!
//! Config section: `.serial_virt_tx_config` (the driver's and the clients' Tx queues, client
//! names, begin string, colour and Rx switches). At start it writes the begin string and the
//! colour legend to the driver, then multiplexes the clients' output.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_serial::{SerialVirtTxConfig, VirtTx};

lions_os::config!(static CONFIG: SerialVirtTxConfig = ".serial_virt_tx_config");

use lions_os::startup_failed as fail;

fn init() -> VirtTx<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let mut virt = VirtTx::new(config).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() == 0 {
        virt.init().unwrap_or_else(|e| fail(e));
    } else {
        // Restarted: the bytes waiting are in the client queues; serve them, no banner again.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
