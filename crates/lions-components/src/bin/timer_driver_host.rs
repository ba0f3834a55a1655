// SPDX-License-Identifier: BSD-2-Clause
//! `timer_driver_host`: the timer driver of the host board (`lions,host-timer`).
//!
//! The generic [`TimerDriver`] (the sDDF timer protocol over PPC) over a [`HostTimer`]: a
//! `CLOCK_MONOTONIC` timerfd, ticks in nanoseconds.
//!
//! Config section: `.device_resources` (its first IRQ is the timerfd's channel; no regions).

use lions_drivers::host::HostTimer;
use lions_os::DeviceResources;
use lions_timer::TimerDriver;

lions_os::config!(static RESOURCES: DeviceResources = ".device_resources");

use lions_os::startup_failed as fail;

fn init() -> TimerDriver<HostTimer> {
    let resources = RESOURCES.get().unwrap_or_else(|e| fail(e));
    let irq = resources
        .irq_channel(0)
        .unwrap_or_else(|| fail("`.device_resources` names no IRQ channel"));
    let dev = HostTimer::new().unwrap_or_else(|e| fail(format_args!("timerfd: {e}")));
    dev.attach_irq(irq).unwrap_or_else(|e| fail(e));
    TimerDriver::new(dev, irq).unwrap_or_else(|e| fail(e))
}

lions_os::protection_domain!(init);
