// SPDX-License-Identifier: BSD-2-Clause
//! `alarm`: a timer client that replaces its deadlines. Each round ([`AlarmRound::nth`]) sets one
//! timeout and at once replaces it by another, alternately a sooner and a later one; the driver
//! keeps one deadline per client, so only the second may fire. On each expiry `alarm` checks how
//! long after setting the kept deadline it came:
//!
//! - not before the kept timeout: the kept deadline fired; print it and start the next round;
//! - before it: some other deadline fired (a replaced one, which must not happen); print
//!   `UNEXPECTED` and keep waiting for the kept one.

#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_os::{ChannelSet, Handler, OsError};
use lions_timer::TimerClient;
use timer_example::{AlarmRound, Error, Secs, timer_client};

struct Alarm {
    timer: TimerClient,
    /// The current round, from 1.
    round: u64,
    /// Its timeouts.
    plan: AlarmRound,
    /// `time_now` just before the kept timeout was set.
    set_at: u64,
}

impl Alarm {
    /// Start round `n`: set its first timeout, then replace it by the kept one.
    fn start_round(&mut self, n: u64) -> Result<(), OsError> {
        let plan = AlarmRound::nth(n);
        self.timer.set_timeout(plan.first)?;
        lions_os::debug_println!("alarm: #{n} set {}", Secs(plan.first));
        self.set_at = self.timer.time_now()?;
        self.timer.set_timeout(plan.kept)?;
        lions_os::debug_println!(
            "alarm: #{n} replaced it by {} ({})",
            Secs(plan.kept),
            if plan.sooner() { "sooner" } else { "later" }
        );
        self.round = n;
        self.plan = plan;
        Ok(())
    }
}

fn init() -> Alarm {
    let mut alarm = Alarm {
        timer: timer_client(),
        round: 0,
        plan: AlarmRound::nth(1),
        set_at: 0,
    };
    if let Err(e) = alarm.start_round(1) {
        panic!("alarm: {e}");
    }
    alarm
}

impl Handler for Alarm {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch != self.timer.channel() {
                return Err(Error::Unexpected(ch));
            }
            let elapsed = self.timer.time_now()?.saturating_sub(self.set_at);
            let (n, plan) = (self.round, self.plan);
            if elapsed < plan.kept {
                lions_os::debug_println!(
                    "alarm: #{n} UNEXPECTED expiry after {}, before the kept {} (a replaced \
                     deadline fired?)",
                    Secs(elapsed),
                    Secs(plan.kept)
                );
                continue;
            }
            lions_os::debug_println!(
                "alarm: #{n} fired after {} (kept {}, replaced {})",
                Secs(elapsed),
                Secs(plan.kept),
                Secs(plan.first)
            );
            self.start_round(n + 1)?;
        }
        Ok(())
    }
}

lions_os::protection_domain!(init);
