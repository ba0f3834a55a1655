// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run i2c`, end to end on a pty: two clients of the I²C virtualiser on the model
//! bus (a DS3231 and a PN532 model in the driver PD), each on the bus address it claimed.
//!
//! - `clock` prints the DS3231's time at least three times, every reading a valid date and time
//!   and the readings advancing (the model follows the host's clock), never backwards.
//! - `nfc` reports the PN532's firmware (the model's IC 0x32, version 1.6) and, while the card file
//!   named by `LIONS_I2C_CARD` is empty, no card.
//! - Writing a UID into the file makes `nfc` print it present; a second card replacing it is
//!   reported as the first removed and the second present; emptying the file makes `nfc` print
//!   the removal.
//! - Ctrl-C stops the system with exit status 0 and no PD reported on stderr.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Screen, System};
use std::path::PathBuf;

/// The `clock: YYYY-MM-DD hh:mm:ss` readings on the screen, in order.
fn readings(s: &Screen) -> Vec<String> {
    s.text()
        .lines()
        .filter_map(|l| l.strip_prefix("clock: "))
        .filter(|t| t.len() == 19 && t.as_bytes()[4] == b'-')
        .map(str::to_owned)
        .collect()
}

/// Whether `t` is a plausible `YYYY-MM-DD hh:mm:ss`.
fn valid(t: &str) -> bool {
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|f| f.parse::<u32>().ok());
    let shape = t.len() == 19 && &t[4..5] == "-" && &t[7..8] == "-" && &t[13..14] == ":";
    shape
        && n(0..4).is_some_and(|y| (2000..2200).contains(&y))
        && n(5..7).is_some_and(|m| (1..=12).contains(&m))
        && n(8..10).is_some_and(|d| (1..=31).contains(&d))
        && n(11..13).is_some_and(|h| h < 24)
        && n(14..16).is_some_and(|m| m < 60)
        && n(17..19).is_some_and(|s| s < 60)
}

/// A card file of our own, removed at the end.
struct CardFile(PathBuf);

impl CardFile {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("lions-i2c-card-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        Self(path)
    }

    fn set(&self, text: &str) {
        // Write a sibling and rename it over the file, so the model never reads half a UID.
        let tmp = self.0.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
}

impl Drop for CardFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn clock_reads_the_rtc_and_nfc_sees_cards_come_and_go() {
    let card = CardFile::new();
    let mut sys = System::start_with("i2c", &[], &[("LIONS_I2C_CARD", card.0.to_str().unwrap())]);

    sys.expect(
        "the PN532's firmware and three clock readings",
        |s: &Screen| s.text().contains("nfc: PN532 firmware 1.6 at 0x24") && readings(s).len() >= 3,
    );
    sys.with_screen(|s| {
        let t = readings(s);
        assert!(t.iter().all(|r| valid(r)), "{}", s.transcript());
        assert!(
            t.windows(2).all(|w| w[0] <= w[1]),
            "the clock went backwards:\n{}",
            s.transcript()
        );
        assert!(
            t.first() < t.last(),
            "the clock stands still:\n{}",
            s.transcript()
        );
        assert!(
            s.text().contains("clock: DS3231 at 0x68 claimed"),
            "{}",
            s.transcript()
        );
        assert!(
            !s.text().contains("nfc: card"),
            "a card with an empty card file:\n{}",
            s.transcript()
        );
    });

    card.set("04a1b2c3\n");
    sys.expect("card 04a1b2c3 present", |s: &Screen| {
        s.text().contains("nfc: card 04a1b2c3 present")
    });
    card.set("DEADBEEF0102AB");
    sys.expect(
        "the first card removed, the second present",
        |s: &Screen| {
            s.text()
                .contains("nfc: card 04a1b2c3 removed\nnfc: card deadbeef0102ab present")
        },
    );
    card.set("");
    sys.expect("card deadbeef0102ab removed", |s: &Screen| {
        s.text().contains("nfc: card deadbeef0102ab removed")
    });
    sys.with_screen(|s| {
        let t = s.text();
        assert_eq!(t.matches("present").count(), 2, "{}", s.transcript());
        assert_eq!(t.matches("removed").count(), 2, "{}", s.transcript());
    });
    // The clock kept going while cards came and went.
    let before = sys.with_screen(|s| readings(s).len());
    sys.expect("another clock reading", |s: &Screen| {
        readings(s).len() > before
    });

    let status = sys.ctrl_c().unwrap_or_else(|| {
        panic!(
            "the system did not stop on Ctrl-C:\n{}",
            sys.with_screen(Screen::transcript)
        )
    });
    sys.with_screen(|s| {
        assert_eq!(status.code(), Some(0), "{}", s.transcript());
        assert!(
            !s.errors.iter().any(|l| l.starts_with("lions-host:")),
            "a PD was reported:\n{}",
            s.transcript()
        );
        assert!(!s.text().contains("panicked"), "{}", s.transcript());
    });
}
