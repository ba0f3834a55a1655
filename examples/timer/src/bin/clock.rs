// SPDX-License-Identifier: BSD-2-Clause
//! `clock`: a timer client that ticks once a second. At start it reads the time and asks for a
//! timeout of [`CLOCK_PERIOD`]; on each expiry (a notification on its timer channel) it reads the
//! time, prints the tick and the time since its start, and re-arms the timeout from the handler.
//!
//! Re-arming from the expiry adds the expiry's latency to each period; printed times are the
//! driver's, so the drift is visible rather than hidden.

#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_os::{ChannelSet, Handler};
use lions_timer::TimerClient;
use timer_example::{CLOCK_PERIOD, Error, Secs, timer_client};

struct Clock {
    timer: TimerClient,
    /// `time_now` at start.
    start: u64,
    /// Ticks so far.
    tick: u64,
}

fn init() -> Clock {
    let timer = timer_client();
    let start = match timer.time_now() {
        Ok(t) => t,
        Err(e) => panic!("clock: {e}"),
    };
    if let Err(e) = timer.set_timeout(CLOCK_PERIOD) {
        panic!("clock: {e}");
    }
    lions_os::debug_println!(
        "clock: started {} after boot; a tick every {}",
        Secs(start),
        Secs(CLOCK_PERIOD)
    );
    Clock {
        timer,
        start,
        tick: 0,
    }
}

impl Handler for Clock {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch != self.timer.channel() {
                return Err(Error::Unexpected(ch));
            }
            let now = self.timer.time_now()?;
            self.tick += 1;
            lions_os::debug_println!(
                "clock: tick {} t={}",
                self.tick,
                Secs(now.saturating_sub(self.start))
            );
            self.timer.set_timeout(CLOCK_PERIOD)?;
        }
        Ok(())
    }
}

lions_os::protection_domain!(init);
