// SPDX-License-Identifier: BSD-2-Clause
//! `i2c_driver_meson`: the I²C driver of the Odroid-C4 (`amlogic,meson-axg-i2c`), a seL4 PD.
//!
//! The generic [`I2cDriver`](lions_i2c::I2cDriver) over a
//! [`MesonI2c`](lions_drivers::i2c::meson::MesonI2c) in the controller's register region, completed
//! by the controller's IRQ, with the bus at 100 kHz from the 166.67 MHz `clk81` input.
//!
//! Config sections: `.device_resources` (region 0: the 4 KiB register block, mapped uncached; IRQ
//! 0: the controller's interrupt channel, as interop's meson descriptor asks for) and
//! `.i2c_driver_config` (the queues to the virtualiser). The client data regions are mapped here
//! too (sdfgen maps them); the driver reaches them through the body pointers the virtualiser
//! checked and translated.
//!
//! Not tried on hardware: the pin multiplexing and clock gate of the bus are not set here (see
//! `examples/i2c/README.md`), and with IRQ completion a hung bus is not timed out.
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use lions_drivers::i2c::meson::{Completion, MesonI2c};
    use lions_drivers::mmio::MmioRegion;
    use lions_i2c::{I2cDriver, I2cDriverConfig, MappedData};
    use lions_os::DeviceResources;

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
    lions_os::config!(static CONFIG: I2cDriverConfig = ".i2c_driver_config");

    use lions_os::startup_failed as fail;

    /// The controller's input clock (`clk81`) on the S905X3.
    const CLK81_HZ: u32 = 166_666_666;
    /// Standard-mode I²C.
    const BUS_HZ: u32 = 100_000;
    /// Bytes of the register block the driver touches (`CTRL` to `TOK_RDATA1`).
    const REGS: usize = 0x20;

    pub(crate) fn init() -> I2cDriver<'static, MesonI2c<MmioRegion>, MappedData> {
        let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
        let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
        let irq = resources
            .irq_channel(0)
            .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
        let (base, len) = resources
            .regions()
            .first()
            .and_then(|r| r.region.as_raw_parts())
            .unwrap_or_else(|| fail("`.device_resources` names no register region"));
        if len < REGS {
            fail("the register region is smaller than the controller's registers");
        }
        // SAFETY: the system description maps the controller's register block uncached at this
        // address, `len` bytes, before `init` and for the PD's life, into this PD only; this is
        // its only handle.
        let regs = unsafe { MmioRegion::new(base, len) }
            .unwrap_or_else(|| fail("register region is not 4-byte aligned"));
        let dev = MesonI2c::new(regs, Completion::Irq, CLK81_HZ, BUS_HZ);
        // SAFETY: the virtualiser checks every body pointer against a client data region that
        // the system description maps read-write into this PD, and nothing else here references
        // them.
        let mem = unsafe { MappedData::new() };
        I2cDriver::new(dev, mem, config, irq).unwrap_or_else(|e| fail(e))
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "i2c_driver_meson drives the Meson I2C controller of the Odroid-C4 under seL4; \
         the host board's I2C driver is i2c_driver_model_bus"
    );
    std::process::ExitCode::FAILURE
}
