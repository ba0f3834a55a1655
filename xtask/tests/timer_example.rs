// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run timer`, end to end on a pty: build the example (metaprogram, the host timer
//! driver from lions-components, the two clients, config sections), run it through the
//! `lions-host` launcher, read the terminal until `clock` has ticked four times and `alarm` has
//! finished seven rounds (bounded waits), then type Ctrl-C.
//!
//! Every check is on what the PDs print (times the timer driver reported), never on time measured
//! here:
//!
//! - `clock: tick N t=S.mmms`: ticks numbered 1, 2, 3, ... with times increasing by 0.9–1.5 s
//!   (one second plus the expiry's latency; the driver never fires early);
//! - `alarm`: every round prints its set, its replacement and exactly one expiry, at or after the
//!   kept timeout (less than 0.5 s late), never before it: the replaced deadlines did not fire (a
//!   replaced 0.2 s one would come before the kept 0.7 s; a replaced 2 s one would land inside
//!   round k + 3, before that round's kept deadline, and seven rounds cover rounds 1 and 3's);
//! - Ctrl-C ends the launcher with status 0 and no report on stderr (no PD faulted).
#![allow(clippy::unwrap_used)]

mod common;

use common::{STOP_TIMEOUT, Screen, System};

/// `S.mmms` as milliseconds.
fn millis(s: &str) -> Option<u64> {
    let (whole, frac) = s.strip_suffix('s')?.split_once('.')?;
    if frac.len() != 3 {
        return None;
    }
    Some(whole.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
}

/// The part of `line` from `marker` on (the echoed `^C` may precede a PD's line).
fn from<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| line[i..].trim_end())
}

/// `clock: tick N t=S.mmms` lines as (N, t in ms).
fn clock_ticks(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = from(l, "clock: tick ")?.strip_prefix("clock: tick ")?;
            let (n, t) = rest.split_once(" t=")?;
            Some((n.parse().ok()?, millis(t)?))
        })
        .collect()
}

/// One `alarm: #N ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Alarm {
    /// `#N set S` (ms).
    Set { round: u64, ms: u64 },
    /// `#N replaced it by S (sooner|later)`.
    Replaced { round: u64, ms: u64, sooner: bool },
    /// `#N fired after S (kept K, replaced R)`.
    Fired {
        round: u64,
        after: u64,
        kept: u64,
        replaced: u64,
    },
    /// Any other `alarm:` line (an `UNEXPECTED` expiry, a panic message, ...).
    Other(String),
}

fn alarm_lines(text: &str) -> Vec<Alarm> {
    let parse = |l: &str| -> Option<Alarm> {
        let (round, rest) = l.strip_prefix("alarm: #")?.split_once(' ')?;
        let round = round.parse().ok()?;
        if let Some(s) = rest.strip_prefix("set ") {
            return Some(Alarm::Set {
                round,
                ms: millis(s)?,
            });
        }
        if let Some(r) = rest.strip_prefix("replaced it by ") {
            let (s, how) = r.split_once(' ')?;
            let sooner = match how {
                "(sooner)" => true,
                "(later)" => false,
                _ => return None,
            };
            return Some(Alarm::Replaced {
                round,
                ms: millis(s)?,
                sooner,
            });
        }
        let r = rest.strip_prefix("fired after ")?;
        let (after, r) = r.split_once(" (kept ")?;
        let (kept, r) = r.split_once(", replaced ")?;
        let replaced = r.strip_suffix(')')?;
        Some(Alarm::Fired {
            round,
            after: millis(after)?,
            kept: millis(kept)?,
            replaced: millis(replaced)?,
        })
    };
    text.lines()
        .filter_map(|l| from(l, "alarm:"))
        .map(|l| parse(l).unwrap_or_else(|| Alarm::Other(l.to_owned())))
        .collect()
}

fn fired_rounds(text: &str) -> u64 {
    alarm_lines(text)
        .iter()
        .filter(|a| matches!(a, Alarm::Fired { .. }))
        .count() as u64
}

/// The alarm's plan as `examples/timer/README.md` states it: odd rounds set 2 s and replace it by
/// a sooner 0.5 s; even rounds set 0.2 s and replace it by a later 0.7 s.
fn plan(round: u64) -> (u64, u64) {
    if round % 2 == 1 {
        (2000, 500)
    } else {
        (200, 700)
    }
}

const TICKS: usize = 4;
const ROUNDS: u64 = 7;

#[test]
fn run_timer_on_the_host_board() {
    let mut sys = System::start("timer");
    sys.expect(
        &format!("{TICKS} clock ticks and {ROUNDS} alarm rounds"),
        |s: &Screen| {
            let t = s.text();
            clock_ticks(&t).len() >= TICKS && fired_rounds(&t) >= ROUNDS
        },
    );
    let status = sys.ctrl_c();
    let transcript = sys.stop();
    let text = sys.with_screen(Screen::text);
    let errors = sys.with_screen(|s| s.errors.clone());

    // Ctrl-C stops the system cleanly: status 0, nothing reported.
    let status = status.unwrap_or_else(|| {
        panic!("the launcher did not end within {STOP_TIMEOUT:?} of Ctrl-C:\n{transcript}")
    });
    assert_eq!(status.code(), Some(0), "launcher status:\n{transcript}");
    let reports: Vec<&String> = errors
        .iter()
        .filter(|l| l.starts_with("lions-host:"))
        .collect();
    assert!(reports.is_empty(), "launcher reports:\n{transcript}");

    // clock: consecutive ticks about a second apart, as the driver's time says.
    let ticks = clock_ticks(&text);
    assert!(ticks.len() >= TICKS, "{transcript}");
    assert!(
        text.contains("clock: started ") && text.contains("a tick every 1.000s"),
        "{transcript}"
    );
    let mut last = 0;
    for (i, &(n, t)) in ticks.iter().enumerate() {
        assert_eq!(n, i as u64 + 1, "tick numbers:\n{transcript}");
        assert!(t > last, "tick {n} at {t} ms:\n{transcript}");
        let step = t - last;
        assert!(
            (900..=1500).contains(&step),
            "tick {n} at {t} ms, {step} ms after the previous one:\n{transcript}"
        );
        last = t;
    }

    // alarm: per round one set, one replacement, one expiry at or after the kept deadline.
    let lines = alarm_lines(&text);
    let others: Vec<&Alarm> = lines
        .iter()
        .filter(|a| matches!(a, Alarm::Other(_)))
        .collect();
    assert!(
        others.is_empty(),
        "unexpected alarm lines {others:?}:\n{transcript}"
    );
    let rounds = fired_rounds(&text);
    assert!(rounds >= ROUNDS, "{transcript}");
    for round in 1..=rounds {
        let of: Vec<&Alarm> = lines
            .iter()
            .filter(|a| match a {
                Alarm::Set { round: r, .. }
                | Alarm::Replaced { round: r, .. }
                | Alarm::Fired { round: r, .. } => *r == round,
                Alarm::Other(_) => false,
            })
            .collect();
        let (first, kept) = plan(round);
        let want_sooner = kept < first;
        match of[..] {
            [
                Alarm::Set { ms: set, .. },
                Alarm::Replaced { ms: by, sooner, .. },
                Alarm::Fired {
                    after,
                    kept: k,
                    replaced,
                    ..
                },
            ] => {
                assert_eq!(
                    (*set, *by, *sooner),
                    (first, kept, want_sooner),
                    "round {round}:\n{transcript}"
                );
                assert_eq!(
                    (*k, *replaced),
                    (kept, first),
                    "round {round}:\n{transcript}"
                );
                assert!(
                    (kept..kept + 500).contains(after),
                    "round {round} fired after {after} ms, kept {kept} ms:\n{transcript}"
                );
            }
            _ => panic!("round {round}: lines {of:?}:\n{transcript}"),
        }
    }
}

#[test]
fn parsers_read_what_the_clients_print() {
    let text = "clock: started 12.345s after boot; a tick every 1.000s\n\
                clock: tick 1 t=1.000s\n\
                alarm: #1 set 2.000s\n\
                alarm: #1 replaced it by 0.500s (sooner)\n\
                alarm: #1 fired after 0.512s (kept 0.500s, replaced 2.000s)\n\
                alarm: #2 UNEXPECTED expiry after 0.200s, before the kept 0.700s\n\
                ^Cclock: tick 2 t=2.003s\n";
    assert_eq!(clock_ticks(text), [(1, 1000), (2, 2003)]);
    assert_eq!(
        alarm_lines(text),
        [
            Alarm::Set { round: 1, ms: 2000 },
            Alarm::Replaced {
                round: 1,
                ms: 500,
                sooner: true
            },
            Alarm::Fired {
                round: 1,
                after: 512,
                kept: 500,
                replaced: 2000
            },
            Alarm::Other("alarm: #2 UNEXPECTED expiry after 0.200s, before the kept 0.700s".into()),
        ]
    );
    assert_eq!(millis("1.00s"), None);
    assert_eq!(millis("12.345s"), Some(12_345));
}
