// SPDX-License-Identifier: BSD-2-Clause
//! `i2c_driver_model_bus`: the I²C driver of boards without an I²C controller (the host board,
//! `qemu_virt_aarch64`). It is a **model bus**, not a hardware driver: the generic
//! [`I2cDriver`] over a [`ModelBus`] that hosts a DS3231 model (0x68) and a PN532 model (0x24)
//! inside this PD, so the virtualiser, the client library and the device drivers above it run
//! unchanged.
//!
//! - Time: on the host board the DS3231 model follows the host's clock (whole seconds since the
//!   PD started, from the power-on time 2000-01-01 00:00:00 until a client sets it). On seL4
//!   (aarch64) it follows the Arm generic timer's counter (`CNTPCT_EL0` / `CNTFRQ_EL0`, read
//!   only; seL4 exports them to user level for sDDF's timer driver too): whole seconds since boot.
//! - Cards (host board): the environment variable `LIONS_I2C_CARD` names a file; at every
//!   InListPassiveTarget the model reads it: hexadecimal UID bytes (e.g. `04a1b2c3`) put that
//!   card in the field, an empty or missing file takes it away. On seL4 (aarch64), with no file
//!   to read, a demonstration card (UID `0453454c34`) is in the field for the first 3 seconds of
//!   every 10 (by the generic counter).
//!
//! Config sections: `.device_resources` (its first IRQ is the driver's channel; the model never
//! raises it) and `.i2c_driver_config` (the queues to the virtualiser). The client data regions
//! are mapped here too (sdfgen maps them), and the driver reaches them through the body pointers
//! the virtualiser checked and translated.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(any(target_os = "linux", all(target_os = "none", target_arch = "aarch64")))]
use lions_drivers::i2c::model::Uid;
use lions_drivers::i2c::model::{Ds3231Model, ModelBus, Pn532Model};
use lions_i2c::{I2cDriver, I2cDriverConfig, MappedData};
use lions_os::DeviceResources;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
lions_os::config!(static CONFIG: I2cDriverConfig = ".i2c_driver_config");

use lions_os::startup_failed as fail;

type Bus = ModelBus<Ds3231Model, Pn532Model>;

/// Seconds of the host's monotonic clock since the first call.
#[cfg(target_os = "linux")]
fn clock() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Seconds of the Arm generic timer's counter since boot.
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
fn clock() -> u64 {
    use lions_drivers::qemu_virt_aarch64::generic_timer::{PhysicalTimer, TimerRegs};
    let mut counter = PhysicalTimer::new();
    counter.counter() / counter.frequency().max(1)
}

/// The card `LIONS_I2C_CARD`'s file names, if any.
#[cfg(target_os = "linux")]
fn card() -> Option<Uid> {
    let path = std::env::var_os("LIONS_I2C_CARD")?;
    let text = std::fs::read_to_string(path).ok()?;
    let hex: Vec<u8> = text.trim().bytes().collect();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 20 {
        return None;
    }
    let bytes: Option<Vec<u8>> = hex
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect();
    Some(Uid::new(&bytes?))
}

/// The demonstration card of seL4: in the field 3 seconds out of 10.
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
fn card() -> Option<Uid> {
    (clock() % 10 < 3).then(|| Uid::new(&[0x04, 0x53, 0x45, 0x4c, 0x34]))
}

fn bus() -> Bus {
    #[allow(unused_mut)]
    let mut pn532 = Pn532Model::new();
    #[cfg(any(target_os = "linux", all(target_os = "none", target_arch = "aarch64")))]
    pn532.set_card_source(card);
    let bus = ModelBus::new(Ds3231Model::new(), pn532);
    #[cfg(any(target_os = "linux", all(target_os = "none", target_arch = "aarch64")))]
    let bus = bus.with_clock(clock);
    bus
}

fn init() -> I2cDriver<'static, Bus, MappedData> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    // SAFETY: the virtualiser checks every body pointer against a client data region that the
    // system description maps read-write into this PD, and nothing else here references them.
    let mem = unsafe { MappedData::new() };
    I2cDriver::new(bus(), mem, config, irq).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
