// SPDX-License-Identifier: BSD-2-Clause
//! The timer client library: two PPCs on the client's channel to the driver.
//!
//! - [`TimerClient::time_now`]: PPC with label [`GET_TIME`](crate::protocol::GET_TIME) and no
//!   arguments; the reply's MR0 is nanoseconds since boot.
//! - [`TimerClient::set_timeout`]: MR0 = relative timeout in ns, PPC with label
//!   [`SET_TIMEOUT`](crate::protocol::SET_TIMEOUT); empty reply. It replaces this client's earlier
//!   timeout. Expiry arrives later as a **notification on the same channel**: the client's
//!   `notified` sees [`TimerClient::channel`] in its set and re-arms there if it wants another.
//!
//! A reply whose label is not 0 means the driver refused the call (see
//! [`crate::driver::REPLY_ERROR`]); it is returned as an [`OsError`] of kind
//! [`OsErrorKind::Failed`].

use crate::config::TimerClientConfig;
use crate::protocol::TimerLabel;
use lions_os::{Channel, MessageInfo, Op, OsError, OsErrorKind, get_mr, set_mr};

/// A client's handle on the timer driver: the PPC channel to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerClient {
    channel: Channel,
}

impl TimerClient {
    /// A client calling the driver on `channel`.
    pub const fn new(channel: Channel) -> Self {
        Self { channel }
    }

    /// The client of a checked config blob; `None` when its `driver_id` is not a channel (above 61).
    pub const fn from_config(config: &TimerClientConfig) -> Option<Self> {
        match Channel::try_new(config.driver_id) {
            Some(channel) => Some(Self { channel }),
            None => None,
        }
    }

    /// The channel to the driver, on which expiries are notified.
    pub const fn channel(&self) -> Channel {
        self.channel
    }

    /// Nanoseconds since boot, as the driver's counter reads now.
    pub fn time_now(&self) -> Result<u64, OsError> {
        self.call(TimerLabel::GetTime)?;
        Ok(get_mr(0))
    }

    /// Ask for a notification on [`channel`](Self::channel) `relative_ns` nanoseconds from now,
    /// replacing this client's earlier timeout. A timeout of 0 expires at once.
    pub fn set_timeout(&self, relative_ns: u64) -> Result<(), OsError> {
        set_mr(0, relative_ns);
        self.call(TimerLabel::SetTimeout)
    }

    /// A one-timeout alarm over this client ([`Alarm`]).
    pub const fn alarm(self) -> Alarm {
        Alarm {
            timer: self,
            armed: None,
        }
    }

    fn call(&self, op: TimerLabel) -> Result<(), OsError> {
        let reply = self
            .channel
            .pp_call(MessageInfo::new(op.label(), op.request_mrs()))?;
        if reply.label() != 0 {
            return Err(lions_os::runtime::with_pd_name(|pd| {
                OsError::new(pd, Op::PpCall, Some(self.channel), OsErrorKind::Failed)
            }));
        }
        Ok(())
    }
}

/// The client's one timeout kept armed for a deadline that changes from event to event (an
/// instant in the driver's nanoseconds, e.g. when a rate limit next lets something through):
/// [`arm`](Self::arm) makes the two PPCs only when the deadline moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    timer: TimerClient,
    armed: Option<u64>,
}

impl Alarm {
    /// Want a notification at instant `at` (`None`: no deadline; a timeout armed earlier still
    /// expires, a spurious wake-up): sets the timeout to `at - now` (at once if `at` is past)
    /// unless it is armed for `at` already.
    pub fn arm(&mut self, at: Option<u64>) -> Result<(), OsError> {
        if let Some(t) = at
            && self.armed != at
        {
            self.timer
                .set_timeout(t.saturating_sub(self.timer.time_now()?))?;
        }
        self.armed = at;
        Ok(())
    }
}
