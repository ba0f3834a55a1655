// SPDX-License-Identifier: BSD-2-Clause
//! `timer_driver_arm_generic`: the timer driver of `qemu_virt_aarch64` (`arm,armv8-timer`), a
//! seL4 PD.
//!
//! The generic [`TimerDriver`](lions_timer::TimerDriver) (the sDDF timer protocol over PPC) over
//! the Arm generic timer's EL0 physical timer
//! ([`PhysicalTimer`](lions_drivers::qemu_virt_aarch64::generic_timer::PhysicalTimer):
//! `CNTPCT_EL0`, `CNTP_*_EL0`, which seL4 exports to user level on this board), ticking at
//! `CNTFRQ_EL0`.
//!
//! Config section: `.device_resources` (no regions; IRQ 0 is the timer's interrupt channel).
//!
//! Built for any other target it is a program that says it is not a host-board component.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod sel4 {
    use lions_drivers::qemu_virt_aarch64::generic_timer::{GenericTimer, PhysicalTimer};
    use lions_os::DeviceResources;
    use lions_timer::TimerDriver;

    lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");

    use lions_os::startup_failed as fail;

    pub(crate) fn init() -> TimerDriver<GenericTimer<PhysicalTimer>> {
        let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
        let irq = resources
            .irq_channel(0)
            .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
        TimerDriver::new(GenericTimer::new(PhysicalTimer::new()), irq).unwrap_or_else(|e| fail(e))
    }
}

#[cfg(target_os = "none")]
lions_os::protection_domain!(sel4::init);

/// Not a host-board component: say so.
#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "timer_driver_arm_generic drives the Arm generic timer under seL4 (qemu_virt_aarch64); \
         the host board's timer driver is timer_driver_host"
    );
    std::process::ExitCode::FAILURE
}
