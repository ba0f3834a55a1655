// SPDX-License-Identifier: BSD-2-Clause
//! `i2c_driver_host_dev`: an I²C driver of the host board for a real bus (`lions,host-i2c-dev`):
//! the generic [`I2cDriver`] over [`HostI2c`] on the Linux adapter the environment variable
//! `LIONS_I2C_DEV` names (e.g. `/dev/i2c-1`: load `i2c-dev`, and give the user access to it).
//!
//! Transfers run synchronously through `I2C_RDWR` (see `lions_drivers::host::i2cdev` for how
//! device calls become messages and what the kernel interface cannot express); the IRQ channel in
//! `.device_resources` is never raised.
//!
//! Config sections: `.device_resources` (its first IRQ is the driver's channel) and
//! `.i2c_driver_config` (the queues to the virtualiser). The client data regions are mapped here
//! too (sdfgen maps them), and the driver reaches them through the body pointers the virtualiser
//! checked and translated.

use lions_drivers::host::i2cdev::{HostI2c, I2cDevFile};
use lions_i2c::{I2cDriver, I2cDriverConfig, MappedData};
use lions_os::DeviceResources;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: I2cDriverConfig = ".i2c_driver_config");

use lions_os::startup_failed as fail;

fn init() -> I2cDriver<'static, HostI2c<I2cDevFile>, MappedData> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    let path = std::env::var("LIONS_I2C_DEV")
        .unwrap_or_else(|_| fail("set LIONS_I2C_DEV to the adapter, e.g. /dev/i2c-1"));
    let adapter = I2cDevFile::open(&path).unwrap_or_else(|e| fail(format_args!("{path}: {e}")));
    // SAFETY: the virtualiser checks every body pointer against a client data region that the
    // system description maps read-write into this PD, and nothing else here references them.
    let mem = unsafe { MappedData::new() };
    I2cDriver::new(HostI2c::new(adapter), mem, config, irq).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
