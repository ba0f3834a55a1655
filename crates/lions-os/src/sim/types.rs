// SPDX-License-Identifier: BSD-2-Clause
//! The sim's vocabulary: PD ids, channel ends, counters, faults, trace events, errors.

use crate::{Channel, ChannelSet};
use std::fmt;

/// A PD of one [`Sim`](super::Sim), in the order they were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PdId(pub(super) usize);

impl PdId {
    /// Position in the order of [`Sim::add_pd`](super::Sim::add_pd) calls.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One end of a channel, as `<end pd="…" id="…" pp="…" notify="…"/>` in a Microkit SDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub(super) pd: PdId,
    pub(super) id: u8,
    pub(super) pp: bool,
    pub(super) notify: bool,
}

impl End {
    /// PD `pd` sees the channel as `id`; it may notify the other end and may not PPC it.
    pub fn new(pd: PdId, id: u8) -> Self {
        Self {
            pd,
            id,
            pp: false,
            notify: true,
        }
    }

    /// This end may PPC the other end (`pp="true"`).
    #[must_use]
    pub fn pp(mut self) -> Self {
        self.pp = true;
        self
    }

    /// This end may not notify the other end (`notify="false"`).
    #[must_use]
    pub fn no_notify(mut self) -> Self {
        self.notify = false;
        self
    }
}

/// Per-PD counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PdStats {
    /// Notifications this PD sent (immediate and deferred).
    pub notifies_sent: u64,
    /// Wake-ups: `notified` calls (each may carry several channels).
    pub wakeups: u64,
    /// PPCs this PD made.
    pub ppcs_made: u64,
    /// PPCs this PD served.
    pub ppcs_served: u64,
    /// `irq_ack`s by this PD (the start-up acknowledgement is not counted).
    pub irq_acks: u64,
    /// IRQs delivered to this PD.
    pub irqs: u64,
    /// Notifications and IRQs dropped because this PD was faulted.
    pub dropped: u64,
}

/// A PD fault: which PD and why (the handler's error or panic message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFault {
    /// The faulted PD.
    pub pd: String,
    /// The cause.
    pub cause: String,
}

/// One entry of the trace ([`Sim::record_trace`](super::Sim::record_trace)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `pd`'s `notified` was called with `channels`.
    Woken {
        /// The PD.
        pd: PdId,
        /// What it was given.
        channels: ChannelSet,
    },
    /// `from` signalled its `channel`, which leads to `to`.
    Notify {
        /// Sender.
        from: PdId,
        /// Sender's channel id.
        channel: Channel,
        /// Receiver.
        to: PdId,
    },
    /// A notification or IRQ for faulted `to` on its `channel` was dropped.
    Dropped {
        /// The faulted PD.
        to: PdId,
        /// Its channel id.
        channel: Channel,
    },
    /// `from` called `to` through its `channel` with `label`.
    PpCall {
        /// Caller.
        from: PdId,
        /// Caller's channel id.
        channel: Channel,
        /// Callee.
        to: PdId,
        /// Message label.
        label: u64,
    },
    /// An IRQ was delivered to `pd` on `channel`.
    Irq {
        /// The PD.
        pd: PdId,
        /// The IRQ channel.
        channel: Channel,
    },
    /// `pd` acknowledged the IRQ on `channel`.
    IrqAck {
        /// The PD.
        pd: PdId,
        /// The IRQ channel.
        channel: Channel,
    },
    /// `pd` faulted.
    Fault {
        /// The PD.
        pd: PdId,
    },
}

/// A refused system description or a run that did not settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The system is invalid (the message names the PDs and channels).
    Config(String),
    /// [`Sim::run_until_idle`](super::Sim::run_until_idle) still had work after `steps` steps;
    /// `busy` names the pending PDs.
    Livelock {
        /// Steps taken.
        steps: usize,
        /// PDs with pending notifications.
        busy: Vec<String>,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => f.write_str(m),
            Self::Livelock { steps, busy } => {
                write!(
                    f,
                    "not idle after {steps} steps; pending: {}",
                    busy.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for SimError {}
