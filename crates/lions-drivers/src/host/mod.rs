// SPDX-License-Identifier: BSD-2-Clause
//! Drivers of the host board (feature `host`, Linux): a host device is a host fd that becomes an
//! IRQ on the driver's `<irq>` channel through `lions_os::host::register_irq_fd`; the PD's event
//! loop delivers it when the fd is readable and polls it again after `irq_ack`, which the generic
//! class drivers do for us.
//!
//! - [`serial::HostSerial`] (`lions,host-serial`): the launching terminal (the PD's inherited
//!   stdin and stdout), a pty or terminal path, or any pair of fds; raw mode handled by
//!   [`terminal`].
//! - [`timer::HostTimer`] (`lions,host-timer`): a `CLOCK_MONOTONIC` timerfd, ticks in ns.
//! - [`tap::HostTap`] (`lions,host-net`): a Linux TAP interface as an Ethernet device.
//! - [`usernet::UserNet`] (`lions,host-net`, no privileges): an Ethernet segment ending in a
//!   gateway in the driver process, with host port forwarding.
//! - [`i2cdev::HostI2c`] (`lions,host-i2c-dev`): a Linux I²C adapter (`/dev/i2c-N`, `I2C_RDWR`)
//!   as an [`lions_i2c::I2cDevice`].

pub mod i2cdev;
pub mod serial;
mod sys;
pub mod tap;
pub mod terminal;
pub mod timer;
pub mod usernet;

pub use serial::HostSerial;
pub use tap::HostTap;
pub use timer::{HOST_TIMER_HZ, HostTimer};
pub use usernet::UserNet;
pub mod blk;
