// SPDX-License-Identifier: BSD-2-Clause
//! `serial_driver_host`: the serial driver of the host board (`lions,host-serial`).
//!
//! The generic [`SerialDriver`] over a [`HostSerial`]: the PD's inherited stdin and stdout (the
//! terminal `lions-host` was started from; a terminal there is put into raw mode, Ctrl-C still
//! stops the system, Ctrl-\ reaches the Rx virtualiser as a byte), or, when the environment
//! variable `LIONS_HOST_SERIAL` names a path, that terminal or pty (e.g. one end of
//! `socat -d -d pty,raw,echo=0 pty,raw,echo=0`).
//!
//! Config sections: `.device_resources` (its first IRQ is the device's channel; no regions) and
//! `.serial_driver_config` (the queues to the virtualisers; the baud rate means nothing here).

use lions_drivers::host::HostSerial;
use lions_os::DeviceResources;
use lions_serial::{SerialDriver, SerialDriverConfig};
use std::path::Path;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: SerialDriverConfig = ".serial_driver_config");

/// Names a terminal or pty to use instead of stdin/stdout.
const DEVICE_ENV: &str = "LIONS_HOST_SERIAL";

use lions_os::startup_failed as fail;

fn init() -> SerialDriver<'static, HostSerial> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    let dev = match std::env::var_os(DEVICE_ENV) {
        Some(path) if !path.is_empty() => HostSerial::open(Path::new(&path)),
        _ => HostSerial::stdio(),
    }
    .unwrap_or_else(|e| fail(format_args!("serial device: {e}")));
    if let Err(e) = dev.attach_irq(irq) {
        drop(dev); // Restores the terminal: `exit` runs no destructors.
        fail(e);
    }
    SerialDriver::new(dev, config, irq).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
