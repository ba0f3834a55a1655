// SPDX-License-Identifier: BSD-2-Clause
//! # lions-timer: the timer class
//!
//! The timer is sDDF's "simple device": a driver that serves protected procedure calls (PPCs), with
//! no shared queues. This crate holds the wire protocol, the client config blob (byte-compatible
//! with `sdfgen` 0.35.1) and overflow-safe conversions between counter ticks and nanoseconds.
//!
//! ## Wire protocol ([`protocol`])
//!
//! - The driver is a passive (or highest-priority) PD holding only `.device_resources`. Each client
//!   has one **PPC channel** to it; the client's end id is [`config::TimerClientConfig::driver_id`].
//! - **Get time**: label [`TimerLabel::GetTime`] (0), no arguments; the reply carries MR0 =
//!   nanoseconds since boot.
//! - **Set timeout**: label [`TimerLabel::SetTimeout`] (1), MR0 = a **relative** timeout in
//!   nanoseconds; the reply is empty. A new timeout replaces the client's previous one in
//!   single-deadline drivers. There is no cancel and no periodic mode.
//! - **Expiry**: the driver notifies the client on the **same channel** the PPC came in on; the
//!   client re-arms from its notification handler if it wants another.
//! - Any other label is refused ([`TimerLabel::try_from`] fails) rather than guessed at.
//!
//! ## Configuration (magic `"sDDF\x06"`)
//!
//! | struct | section | size |
//! |---|---|---|
//! | [`config::TimerClientConfig`] | `.timer_client_config` | 6 B |
//!
//! Timer drivers take only `.device_resources` (`lions_os::DeviceResources`).
//!
//! ## Client and driver
//!
//! - [`client::TimerClient`]: `time_now()` and `set_timeout(ns)` over the PPC channel.
//! - [`driver::TimerDevice`]: the hardware part a timer driver writes (counter, frequency, one
//!   compare interrupt); [`driver::TimerDriver`]: the generic driver (a `lions_os::Handler`) that
//!   serves the protocol with one deadline per client channel.
//!
//! ## Time conversion ([`time`])
//!
//! [`time::period_transform`] computes `floor(value × to_freq / from_freq)` exactly in 128-bit
//! arithmetic and is **checked**: it returns `None` when `from_freq` is 0 or the result does not
//! fit a `u64`. Callers that want saturation (a deadline "never") write `.unwrap_or(u64::MAX)`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

mod builders;
pub mod client;
pub mod config;
pub mod driver;
pub mod protocol;
pub mod time;

pub use client::{Alarm, TimerClient};
pub use config::TimerClientConfig;
pub use driver::{TimerDevice, TimerDriver};
pub use protocol::{TimerLabel, TimerRequest, UnknownLabel};
pub use time::{
    NS_PER_SEC, ns_to_ticks, ns_to_ticks_ceil, period_transform, period_transform_ceil, ticks_to_ns,
};
