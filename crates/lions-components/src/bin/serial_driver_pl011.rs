// SPDX-License-Identifier: BSD-2-Clause
//! `serial_driver_pl011`: the serial driver of `qemu_virt_aarch64` (`arm,pl011`), a seL4 PD.
//!
//! The generic [`SerialDriver`](lions_serial::SerialDriver) over a
//! [`Pl011`](lions_drivers::qemu_virt_aarch64::pl011::Pl011) in the device's register region,
//! clocked by QEMU's 24 MHz `UARTCLK`, at the config's `default_baud`.
//!
//! Config sections: `.device_resources` (region 0: the 4 KiB register block, mapped uncached; IRQ
//! 0: the UART's interrupt channel) and `.serial_driver_config` (the queues to the
//! virtualisers and the baud rate).
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use lions_drivers::mmio::MmioRegion;
    use lions_drivers::qemu_virt_aarch64::pl011::{Pl011, QEMU_UARTCLK_HZ};
    use lions_os::DeviceResources;
    use lions_serial::{SerialDriver, SerialDriverConfig};

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");
    lions_os::config!(static CONFIG: SerialDriverConfig = ".serial_driver_config");

    use lions_os::startup_failed as fail;

    pub(crate) fn init() -> SerialDriver<'static, Pl011<MmioRegion>> {
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
        // SAFETY: the system description maps the UART's register block uncached at this
        // address, `len` bytes, before `init` and for the PD's life, into this PD only; this is
        // its only handle.
        let regs = unsafe { MmioRegion::new(base, len) }
            .unwrap_or_else(|| fail("register region is not 4-byte aligned"));
        let dev = Pl011::from_region(regs, QEMU_UARTCLK_HZ, config.config().default_baud)
            .unwrap_or_else(|e| fail(e));
        SerialDriver::new(dev, config, irq).unwrap_or_else(|e| fail(e))
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "serial_driver_pl011 drives the PL011 UART of qemu_virt_aarch64 under seL4; \
         the host board's serial driver is serial_driver_host"
    );
    std::process::ExitCode::FAILURE
}
