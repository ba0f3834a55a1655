// SPDX-License-Identifier: BSD-2-Clause
//! `serial_virt_rx`: the serial Rx virtualiser ([`lions_serial::VirtRx`]).
//!
//! Config section: `.serial_virt_rx_config` (the driver's and the clients' Rx queues, the switch
//! and terminate characters). Input goes to client 0 until switched (switch char, client number,
//! terminate char).
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_serial::{SerialVirtRxConfig, VirtRx};

lions_os::config!(static CONFIG: SerialVirtRxConfig = ".serial_virt_rx_config");

use lions_os::startup_failed as fail;

fn init() -> VirtRx<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let mut virt = VirtRx::new(config).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() > 0 {
        // Restarted: serve the input that arrived while it was down.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    virt
}

lions_os::protection_domain!(init);
