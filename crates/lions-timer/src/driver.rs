// SPDX-License-Identifier: BSD-2-Clause
//! The timer device class: the hardware trait [`TimerDevice`] and the generic driver
//! [`TimerDriver`], which owns the protocol so a driver author writes only the hardware part.
//!
//! ## What the driver does, event by event
//!
//! - **PPC `GET_TIME`** (label 0): reply label [`REPLY_OK`], MR0 = `ticks_to_ns(now)` (exact floor;
//!   saturates at `u64::MAX` after some centuries of uptime).
//! - **PPC `SET_TIMEOUT`** (label 1, MR0 = relative ns, at least one message register): the
//!   calling channel's deadline becomes `now + ns_to_ticks_ceil(ns)` in ticks, saturating at
//!   `u64::MAX`. It is never early as `GET_TIME` measures (a reading after the expiry is at least
//!   `ns` more than one before the call), and a far-future request never wraps into the past. It
//!   **replaces** that channel's earlier deadline; then the earliest deadline of all channels is
//!   programmed. Empty reply, label [`REPLY_OK`].
//! - **Any other call** (unknown label, `SET_TIMEOUT` without MR0): reply label [`REPLY_ERROR`],
//!   no registers, no state change.
//! - **IRQ** on the driver's IRQ channel: [`TimerDevice::ack`], read now, clear and notify every
//!   channel whose deadline is at or before now (each once), program the next earliest deadline,
//!   `irq_ack`. Notifications on other channels are ignored.
//!
//! One absolute deadline per channel (62 slots indexed by the channel id), as most sDDF timer
//! drivers keep; the per-event work is a scan of 62 slots.

use crate::protocol::TimerRequest;
use crate::time::{ns_to_ticks_ceil, ticks_to_ns};
use lions_os::{Channel, ChannelSet, Handler, MAX_CHANNEL, MessageInfo, OsError, get_mr, set_mr};

/// Reply label of a served call.
pub const REPLY_OK: u64 = 0;
/// Reply label of a refused call (unknown label or missing argument); the reply carries no
/// registers.
pub const REPLY_ERROR: u64 = 1;

/// The hardware part of a timer driver: a free-running counter and one compare interrupt.
pub trait TimerDevice {
    /// Counter frequency in Hz; constant and non-zero.
    fn freq_hz(&self) -> u64;

    /// The counter now, in ticks since boot; never goes backwards.
    fn now_ticks(&mut self) -> u64;

    /// Raise the IRQ once the counter reaches `deadline` ticks (at once if it already has), or
    /// never with `None`. Replaces the previous compare value.
    fn set_compare(&mut self, deadline: Option<u64>);

    /// Clear the device's interrupt condition; called on every IRQ before deadlines are checked.
    /// The default does nothing (for devices whose [`set_compare`](Self::set_compare) clears it).
    fn ack(&mut self) {}
}

/// A device that reports a counter frequency of 0 Hz (ticks cannot be converted to time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroFrequency;

impl core::fmt::Display for ZeroFrequency {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timer device reports a counter frequency of 0 Hz")
    }
}

impl core::error::Error for ZeroFrequency {}

const SLOTS: usize = MAX_CHANNEL as usize + 1;

/// The generic timer driver: a [`Handler`] serving the timer protocol on top of a [`TimerDevice`].
#[derive(Debug)]
pub struct TimerDriver<D> {
    device: D,
    irq: Channel,
    freq: u64,
    /// Absolute deadline in ticks per client channel.
    deadlines: [Option<u64>; SLOTS],
}

impl<D: TimerDevice> TimerDriver<D> {
    /// A driver for `device` whose interrupt arrives on channel `irq`. Disarms the compare.
    pub fn new(mut device: D, irq: Channel) -> Result<Self, ZeroFrequency> {
        let freq = device.freq_hz();
        if freq == 0 {
            return Err(ZeroFrequency);
        }
        device.set_compare(None);
        Ok(Self {
            device,
            irq,
            freq,
            deadlines: [None; SLOTS],
        })
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Nanoseconds since boot (saturating).
    pub fn now_ns(&mut self) -> u64 {
        ticks_to_ns(self.device.now_ticks(), self.freq).unwrap_or(u64::MAX)
    }

    /// Arm (or replace) `client`'s deadline `ns` from now and program the earliest.
    pub fn set_timeout(&mut self, client: Channel, ns: u64) {
        let ticks = ns_to_ticks_ceil(ns, self.freq).unwrap_or(u64::MAX);
        let deadline = self.device.now_ticks().saturating_add(ticks);
        self.deadlines[usize::from(client.index())] = Some(deadline);
        self.program();
    }

    /// Clear every deadline at or before now, program the next, notify each expired client once.
    /// Every client is notified even if one notification fails; the first failure is returned.
    fn expire(&mut self) -> Result<(), OsError> {
        let now = self.device.now_ticks();
        let mut due = ChannelSet::EMPTY;
        for (slot, ch) in self
            .deadlines
            .iter_mut()
            .zip((0..=MAX_CHANNEL).map(Channel::new))
        {
            if slot.is_some_and(|t| t <= now) {
                *slot = None;
                due.insert(ch);
            }
        }
        self.program();
        due.iter().map(Channel::notify).fold(Ok(()), Result::and)
    }

    fn program(&mut self) {
        let next = self.deadlines.iter().flatten().min().copied();
        self.device.set_compare(next);
    }
}

impl<D: TimerDevice> Handler for TimerDriver<D> {
    type Error = OsError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), OsError> {
        if !channels.contains(self.irq) {
            return Ok(());
        }
        self.device.ack();
        let expired = self.expire();
        self.irq.irq_ack().and(expired)
    }

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        Ok(match TimerRequest::decode(msg.label(), get_mr(0)) {
            Ok(TimerRequest::GetTime) => {
                set_mr(0, self.now_ns());
                MessageInfo::new(REPLY_OK, 1)
            }
            Ok(TimerRequest::SetTimeout { ns }) if msg.count() >= 1 => {
                self.set_timeout(channel, ns);
                MessageInfo::new(REPLY_OK, 0)
            }
            _ => MessageInfo::new(REPLY_ERROR, 0),
        })
    }
}
