// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run serial`, end to end on a pty, the way a person at the terminal uses it: the
//! host serial driver owns the terminal, two clients share it through the Tx and Rx virtualisers.
//!
//! - Both clients greet, each in its own colour (the Tx virt colours every client), and lines are
//!   whole: every greeting is in one colour run.
//! - Typed text reaches client 0 (the Rx virt's current client at start) and comes back as its
//!   echo, in client 0's colour; after ten characters client 0 reports them.
//! - Ctrl-\ 1 Enter switches input to client 1: what is typed next is echoed in client 1's colour
//!   and counted by client 1 only; Ctrl-\ 0 Enter switches back.
//! - No byte of a switch sequence reaches a client; Ctrl-\ twice delivers one Ctrl-\.
//! - Ctrl-C stops the system with exit status 0 and no PD reported on stderr.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Screen, System};

/// Ctrl-\, the example's switch character (sdfgen's default).
const SWITCH: u8 = 0x1c;

fn switch_to(sys: &mut System, client: u8) {
    sys.type_keys(&[SWITCH, b'0' + client, b'\r']);
}

#[test]
fn two_clients_share_the_console() {
    let mut sys = System::start("serial");
    sys.expect("both greetings", |s: &Screen| {
        let t = s.text();
        t.contains("client0: hello") && t.contains("client1: hello")
    });
    let (c0, c1) = sys.with_screen(|s| {
        (
            s.colour_of("client0: hello; type and I echo"),
            s.colour_of("client1: hello; type and I echo"),
        )
    });
    let (c0, c1) = (
        c0.unwrap_or_else(|| panic!("client0's greeting is not in one colour")),
        c1.unwrap_or_else(|| panic!("client1's greeting is not in one colour")),
    );
    assert_ne!(c0, c1, "the clients share a colour");

    // Input goes to client 0 first; ten characters make it report.
    sys.type_keys(b"hello, zero");
    sys.expect("client 0's echo and report", |s: &Screen| {
        let t = s.in_colour(c0);
        t.contains("hello, zer") && t.contains("client0: 10 characters received")
    });

    // Switch to client 1 and type there.
    switch_to(&mut sys, 1);
    sys.type_keys(b"0123456789one\r");
    sys.expect("client 1's echo and report", |s: &Screen| {
        let t = s.in_colour(c1);
        t.contains("0123456789")
            && t.contains("client1: 10 characters received")
            && t.contains("one")
    });
    sys.with_screen(|s| {
        let zero = s.in_colour(c0);
        assert!(
            !zero.contains("0123456789") && !zero.contains("one"),
            "client 0 got input meant for client 1:\n{}",
            s.transcript()
        );
        assert!(
            !zero.contains("client0: 20 characters"),
            "client 0 counted more than it was sent:\n{}",
            s.transcript()
        );
    });

    // And back to client 0, which continues its count.
    switch_to(&mut sys, 0);
    // 11 characters so far; the 20th is the final '0'.
    sys.type_keys(b"back to 0\r");
    sys.expect("client 0 again", |s: &Screen| {
        let t = s.in_colour(c0);
        t.contains("oback to 0\nclient0: 20 characters received")
    });

    // No byte of a switch sequence reached a client so far; a doubled Ctrl-\ passes one through.
    sys.with_screen(|s| assert!(!s.text().contains("^\\"), "{}", s.transcript()));
    sys.type_keys(&[SWITCH, SWITCH]);
    sys.expect("an escaped Ctrl-\\ at client 0", |s: &Screen| {
        s.in_colour(c0).contains("^\\")
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
    });
}
