// SPDX-License-Identifier: BSD-2-Clause
//! `i2c_virt`: the I²C virtualiser ([`lions_i2c::I2cVirt`]).
//!
//! Config section: `.i2c_virt_config` (the driver's queues, each client's queues, channel and
//! data region in both mappings). Serves bus-address claims by PPC and validates every client
//! transaction before it reaches the driver.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_i2c::{I2cVirt, I2cVirtConfig};

lions_os::config!(static CONFIG: I2cVirtConfig = ".i2c_virt_config");

use lions_os::startup_failed as fail;

fn init() -> I2cVirt<'static> {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    I2cVirt::new(config).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
