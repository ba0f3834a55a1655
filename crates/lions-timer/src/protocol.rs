// SPDX-License-Identifier: BSD-2-Clause
//! The timer PPC protocol: message labels and their message registers.

/// Raw label of "get time" (`SDDF_TIMER_GET_TIME`).
pub const GET_TIME: u64 = 0;
/// Raw label of "set timeout" (`SDDF_TIMER_SET_TIMEOUT`).
pub const SET_TIMEOUT: u64 = 1;

/// The operation a client asks of the timer driver, as the PPC's message label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum TimerLabel {
    /// No arguments; the reply holds MR0 = nanoseconds since boot.
    GetTime = GET_TIME,
    /// MR0 = timeout in nanoseconds **relative** to now; empty reply. On expiry the driver notifies
    /// the client on the channel the call came in on.
    SetTimeout = SET_TIMEOUT,
}

impl TimerLabel {
    /// The raw label to put in the call's message info.
    pub const fn label(self) -> u64 {
        self as u64
    }

    /// Message registers the call carries.
    pub const fn request_mrs(self) -> usize {
        match self {
            Self::GetTime => 0,
            Self::SetTimeout => 1,
        }
    }

    /// Message registers the reply carries.
    pub const fn reply_mrs(self) -> usize {
        match self {
            Self::GetTime => 1,
            Self::SetTimeout => 0,
        }
    }
}

/// A PPC label that is not part of the timer protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownLabel(pub u64);

impl core::fmt::Display for UnknownLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown timer PPC label {}", self.0)
    }
}

impl core::error::Error for UnknownLabel {}

impl TryFrom<u64> for TimerLabel {
    type Error = UnknownLabel;

    fn try_from(label: u64) -> Result<Self, UnknownLabel> {
        match label {
            GET_TIME => Ok(Self::GetTime),
            SET_TIMEOUT => Ok(Self::SetTimeout),
            other => Err(UnknownLabel(other)),
        }
    }
}

/// One decoded call, as the driver's `protected` handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerRequest {
    /// Reply with the current time in nanoseconds (MR0).
    GetTime,
    /// Arm a timeout `ns` nanoseconds from now.
    SetTimeout {
        /// Relative timeout (MR0 of the call).
        ns: u64,
    },
}

impl TimerRequest {
    /// Decode a call from its label and MR0 (ignored when the label takes no argument).
    pub fn decode(label: u64, mr0: u64) -> Result<Self, UnknownLabel> {
        Ok(match TimerLabel::try_from(label)? {
            TimerLabel::GetTime => Self::GetTime,
            TimerLabel::SetTimeout => Self::SetTimeout { ns: mr0 },
        })
    }

    /// The call's label.
    pub const fn label(&self) -> TimerLabel {
        match self {
            Self::GetTime => TimerLabel::GetTime,
            Self::SetTimeout { .. } => TimerLabel::SetTimeout,
        }
    }

    /// The call's MR0, if it has one.
    pub const fn mr0(&self) -> Option<u64> {
        match self {
            Self::GetTime => None,
            Self::SetTimeout { ns } => Some(*ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_labels_match_sddf() {
        assert_eq!(TimerLabel::GetTime.label(), 0);
        assert_eq!(TimerLabel::SetTimeout.label(), 1);
        assert_eq!(TimerLabel::try_from(0), Ok(TimerLabel::GetTime));
        assert_eq!(TimerLabel::try_from(1), Ok(TimerLabel::SetTimeout));
        for bad in [2, 3, 0xff, 1 << 20, u64::MAX] {
            assert_eq!(TimerLabel::try_from(bad), Err(UnknownLabel(bad)));
        }
    }

    #[test]
    fn message_register_counts() {
        assert_eq!(
            (
                TimerLabel::GetTime.request_mrs(),
                TimerLabel::GetTime.reply_mrs()
            ),
            (0, 1)
        );
        assert_eq!(
            (
                TimerLabel::SetTimeout.request_mrs(),
                TimerLabel::SetTimeout.reply_mrs()
            ),
            (1, 0)
        );
    }

    #[test]
    fn requests_round_trip() {
        assert_eq!(TimerRequest::decode(0, 1234), Ok(TimerRequest::GetTime));
        let set = TimerRequest::decode(1, 5_000_000).unwrap_or(TimerRequest::GetTime);
        assert_eq!(set, TimerRequest::SetTimeout { ns: 5_000_000 });
        assert_eq!(set.label(), TimerLabel::SetTimeout);
        assert_eq!(set.mr0(), Some(5_000_000));
        assert_eq!(TimerRequest::GetTime.mr0(), None);
        assert_eq!(TimerRequest::decode(7, 0), Err(UnknownLabel(7)));
    }
}
