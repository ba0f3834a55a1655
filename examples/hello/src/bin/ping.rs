// SPDX-License-Identifier: BSD-2-Clause
//! `ping` (lowest priority): starts each round by notifying `pong`; when `pong` answers, makes a
//! PPC to it with four numbers in MR0..MR3 and prints the reply. Idle after the last round.
//!
//! Rounds are paced (one every [`PACE`]) so the exchange is easy to follow and is still going on
//! when `faulty` dies; the host board has no timer driver yet, so the pause is a plain sleep in the
//! handler (on seL4 it would be a timer client; there the rounds follow each other at once).
#![cfg_attr(target_os = "none", no_std, no_main)]

use hello::{Error, HelloConfig, LABEL_SUM, LABEL_SUM_REPLY, config, required};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, debug_println, get_mr, set_mr};
#[cfg(not(target_os = "none"))]
use std::time::Duration;

/// Pause between rounds.
#[cfg(not(target_os = "none"))]
const PACE: Duration = Duration::from_millis(400);

struct Ping {
    notify: Channel,
    ppc: Channel,
    rounds: u8,
    round: u8,
}

fn init() -> Ping {
    let cfg: &HelloConfig = config();
    let ping = match (required(cfg.notify, "notify"), required(cfg.ppc, "ppc")) {
        (Ok(notify), Ok(ppc)) => Ping {
            notify,
            ppc,
            rounds: cfg.rounds,
            round: 1,
        },
        (Err(e), _) | (_, Err(e)) => panic!("ping: {e}"),
    };
    debug_println!("ping: round 1: notifying pong");
    if let Err(e) = ping.notify.notify() {
        panic!("ping: {e}");
    }
    ping
}

impl Handler for Ping {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch != self.notify {
                return Err(Error::Unexpected(ch));
            }
            if self.round > self.rounds {
                continue;
            }
            debug_println!("ping: round {}: pong answered", self.round);
            let args: [u64; 4] = core::array::from_fn(|i| u64::from(self.round) * 10 + i as u64);
            for (i, a) in args.iter().enumerate() {
                set_mr(i, *a);
            }
            let reply = self.ppc.pp_call(MessageInfo::new(LABEL_SUM, args.len()))?;
            let sum = get_mr(0);
            let ok = reply.label() == LABEL_SUM_REPLY && sum == args.iter().sum::<u64>();
            debug_println!(
                "ping: round {}: PPC reply label {:#x}, sum({}, {}, {}, {}) = {sum}{}",
                self.round,
                reply.label(),
                args[0],
                args[1],
                args[2],
                args[3],
                if ok { "" } else { " (WRONG)" }
            );
            if self.round == self.rounds {
                debug_println!("ping: done after {} rounds; idle", self.rounds);
                self.round += 1;
                continue;
            }
            #[cfg(not(target_os = "none"))]
            std::thread::sleep(PACE);
            self.round += 1;
            debug_println!("ping: round {}: notifying pong", self.round);
            self.notify.notify()?;
        }
        Ok(())
    }
}

lions_os::protection_domain!(init);
