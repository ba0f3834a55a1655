// SPDX-License-Identifier: BSD-2-Clause
//! `serial_virt_tx`: the serial Tx virtualiser ([`lions_serial::VirtTx`]).
//!
//! Config section: `.serial_virt_tx_config` (the driver's and the clients' Tx queues, client
//! names, begin string, colour and Rx switches). At start it writes the begin string and the
//! colour legend to the driver, then multiplexes the clients' output.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_serial::{SerialVirtTxConfig, VirtTx};

lions_os::config!(static CONFIG: SerialVirtTxConfig = ".serial_virt_tx_config");

/// End the PD as one that could not start: on the host board an exit the launcher reports (and
/// does not restart), elsewhere a fault.
fn fail(what: impl core::fmt::Display) -> ! {
    #[cfg(target_os = "linux")]
    {
        eprintln!("{}: cannot start: {what}", lions_os::pd_name());
        std::process::exit(i32::from(lions_os::host::EXIT_STARTUP));
    }
    #[cfg(not(target_os = "linux"))]
    panic!("serial_virt_tx: cannot start: {what}");
}

fn init() -> VirtTx<'static> {
    let config = CONFIG.get().unwrap_or_else(|e| fail(e));
    // SAFETY: the system description maps every region this config names at its vaddr,
    // read-write, before `init` runs and for the PD's whole life, each shared only with the peer
    // at the other end; this PD makes one handle per queue end.
    let mut virt = unsafe { VirtTx::new(config) }.unwrap_or_else(|e| fail(e));
    virt.init().unwrap_or_else(|e| fail(e));
    virt
}

lions_os::protection_domain!(init);
