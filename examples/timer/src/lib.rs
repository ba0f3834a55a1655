// SPDX-License-Identifier: BSD-2-Clause
//! # timer: two clients of one timer driver
//!
//! Three PDs, described by `meta.py`: the timer driver (`timer_driver_host` from
//! `lions-components` on the host board, priority 254) and two clients below it, `clock` and
//! `alarm`. Each client has one PPC channel to the driver; its end id reaches it in the
//! `.timer_client_config` blob that sdfgen writes and `cargo xtask build` puts into its ELF. No
//! channel number is written in the Rust code.
//!
//! ## Protocol (lions-timer, sDDF's timer protocol)
//!
//! - [`TimerClient::time_now`]: PPC label 0, reply MR0 = nanoseconds since boot.
//! - [`TimerClient::set_timeout`]: PPC label 1, MR0 = a timeout **relative** to now in ns. It
//!   **replaces** the client's earlier deadline (one deadline per client).
//! - On expiry the driver notifies the client on the same channel; the client re-arms there.
//!
//! ## The two clients
//!
//! - `clock` re-arms a [`CLOCK_PERIOD`] timeout on every expiry and prints
//!   `clock: tick N t=S.mmms`, the time since its start as the driver reports it.
//! - `alarm` runs rounds. Each round sets one deadline and at once replaces it by another
//!   ([`AlarmRound::nth`]), alternately a sooner one and a later one, so a replaced deadline that
//!   still fired would show as an expiry before the kept one. On each expiry it prints how long
//!   after setting the kept deadline it came, and starts the next round.
#![cfg_attr(target_os = "none", no_std)]

use lions_os::{Channel, OsError};
use lions_timer::{TimerClient, TimerClientConfig};

// Private: `config!` takes no doc attributes; read it through [`timer_client`].
lions_os::config!(static CONFIG: TimerClientConfig = ".timer_client_config");

/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;
/// One second in nanoseconds.
pub const SECOND: u64 = 1_000 * MS;

/// The clock's tick period.
pub const CLOCK_PERIOD: u64 = SECOND;

/// One round of `alarm`: set a deadline `first` from now, then at once replace it by `kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmRound {
    /// The deadline set first and replaced (it must never fire).
    pub first: u64,
    /// The deadline that replaces it (it must fire, not earlier than this after being set).
    pub kept: u64,
}

/// Odd rounds: a sooner deadline replaces a later one (the replaced one would fire rounds later).
pub const SOONER: AlarmRound = AlarmRound {
    first: 2 * SECOND,
    kept: 500 * MS,
};

/// Even rounds: a later deadline replaces a sooner one (the replaced one would fire first).
pub const LATER: AlarmRound = AlarmRound {
    first: 200 * MS,
    kept: 700 * MS,
};

// Checked at build time: the plan shows replacement both ways, and a replaced deadline that fired
// would show as an early expiry. A replaced `LATER.first` comes before `LATER.kept`; round k's
// replaced `SOONER.first` (2 s) lands in round k + 3, a LATER round that starts 1.7 s after round
// k, 0.3 s before that round's own deadline.
const _: () = {
    assert!(SOONER.kept < SOONER.first && LATER.first < LATER.kept);
    let round_k3 = SOONER.kept + LATER.kept + SOONER.kept;
    assert!(round_k3 < SOONER.first && SOONER.first < round_k3 + LATER.kept);
};

impl AlarmRound {
    /// Round `n` (counted from 1): [`SOONER`] when odd, [`LATER`] when even.
    pub const fn nth(n: u64) -> Self {
        if n % 2 == 1 { SOONER } else { LATER }
    }

    /// Whether the kept deadline is sooner than the replaced one.
    pub const fn sooner(&self) -> bool {
        self.kept < self.first
    }
}

/// Nanoseconds shown as seconds with three decimals, truncated (`1.000s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub u64);

impl core::fmt::Display for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03}s", self.0 / SECOND, self.0 % SECOND / MS)
    }
}

/// Why a timer client stops.
#[derive(Debug)]
pub enum Error {
    /// A PPC or notification was refused.
    Os(OsError),
    /// A notification on a channel that is not the timer's.
    Unexpected(Channel),
}

impl From<OsError> for Error {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => write!(f, "{e}"),
            Self::Unexpected(ch) => write!(f, "unexpected notification on {ch}"),
        }
    }
}

/// This PD's timer client, from its `.timer_client_config`. A client cannot run without it, so
/// a missing or wrong config panics with the reason (the launcher reports the PD as failed).
pub fn timer_client() -> TimerClient {
    let cfg = match CONFIG.get() {
        Ok(cfg) => cfg,
        Err(e) => panic!("{}: {e}", lions_os::pd_name()),
    };
    match TimerClient::from_config(cfg) {
        Some(timer) => timer,
        None => panic!(
            "{}: timer_client_config: driver_id {} is not a channel",
            lions_os::pd_name(),
            cfg.driver_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lions_os::{Config, ConfigError};

    #[test]
    fn seconds_are_shown_with_milliseconds() {
        assert_eq!(Secs(0).to_string(), "0.000s");
        assert_eq!(Secs(SECOND).to_string(), "1.000s");
        assert_eq!(Secs(1_234_999_999).to_string(), "1.234s");
        assert_eq!(Secs(700 * MS).to_string(), "0.700s");
        assert_eq!(
            Secs(u64::MAX).to_string(),
            "18446744073.709s",
            "no overflow at the top"
        );
    }

    #[test]
    fn alarm_rounds_alternate_both_replacements() {
        assert_eq!(AlarmRound::nth(1), SOONER);
        assert_eq!(AlarmRound::nth(2), LATER);
        assert_eq!(AlarmRound::nth(7), SOONER);
        assert!(SOONER.sooner() && !LATER.sooner());
    }

    #[test]
    fn config_blob_as_sdfgen_writes_it() {
        let blob = *b"sDDF\x06\x00";
        let cfg = TimerClientConfig::from_blob(&blob).unwrap();
        assert_eq!(
            TimerClient::from_config(cfg).map(|t| t.channel()),
            Some(Channel::new(0))
        );
    }

    #[test]
    fn unpatched_section_is_refused() {
        assert!(matches!(CONFIG.get(), Err(ConfigError::BadMagic { .. })));
    }
}
