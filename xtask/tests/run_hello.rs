// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run hello`, end to end: build the example (metaprogram, cargo, config sections),
//! start it on the host board through the `lions-host` launcher, watch its output for at most
//! 20 s, then stop it with SIGINT as Ctrl-C would.
//!
//! Expected: the ping/pong notification exchange, the PPC and its reply, `faulty` reading the
//! value `pong` wrote, the launcher reporting `faulty` killed by SIGSEGV, and ping/pong going on
//! after that report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Time for `xtask` to build everything before the launcher starts (a cold build on a small
/// machine).
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Time for the running system to print everything expected.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

fn pump(r: impl Read + Send + 'static, s: Stream, tx: mpsc::Sender<(Stream, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send((s, line)).is_err() {
                break;
            }
        }
    });
}

const EXPECTED: &[&str] = &[
    "pong: wrote 0x11050042 into `shared` at 0x",
    "ping: round 1: notifying pong",
    "pong: notification 1 from ping; notifying back",
    "ping: round 1: pong answered",
    "pong: PPC from ping: sum of [10, 11, 12, 13] = 46",
    "ping: round 1: PPC reply label 0x51, sum(10, 11, 12, 13) = 46",
    "faulty: read 0x11050042 from `shared`",
    "faulty: now writing to `shared`, which this PD may only read",
    "pong: notification 5 from ping; notifying back",
    "ping: round 5: PPC reply label 0x51, sum(50, 51, 52, 53) = 206",
    "ping: done after 5 rounds; idle",
];

fn is_fault_report(s: Stream, line: &str) -> bool {
    s == Stream::Err
        && line.starts_with("lions-host:")
        && line.contains("faulty")
        && line.contains("SIGSEGV")
}

#[test]
fn run_hello_on_the_host_board() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pump(child.stdout.take().unwrap(), Stream::Out, tx.clone());
    pump(child.stderr.take().unwrap(), Stream::Err, tx);

    let mut lines: Vec<(Stream, String)> = Vec::new();
    let mut started: Option<Instant> = None;
    let begin = Instant::now();
    let done = |lines: &[(Stream, String)]| {
        let fault = lines.iter().position(|(s, l)| is_fault_report(*s, l));
        EXPECTED
            .iter()
            .all(|e| lines.iter().any(|(_, l)| l.contains(e)))
            && fault.is_some_and(|f| {
                lines[f..]
                    .iter()
                    .any(|(_, l)| l.starts_with("ping: ") || l.starts_with("pong: "))
            })
    };
    loop {
        let deadline = match started {
            Some(t) => t + RUN_TIMEOUT,
            None => begin + BUILD_TIMEOUT,
        };
        let now = Instant::now();
        if now >= deadline || done(&lines) {
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok((s, line)) => {
                if started.is_none() && s == Stream::Err && line.starts_with("xtask: starting ") {
                    started = Some(Instant::now());
                }
                lines.push((s, line));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            // Both pipes closed: xtask or the launcher ended by itself.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }

    // Ctrl-C: after `exec`, the child is the launcher itself.
    let still_running = child.try_wait().unwrap().is_none();
    if still_running {
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let stop = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if stop.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever was printed while stopping.
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    let transcript: String = lines
        .iter()
        .map(|(s, l)| format!("{}{l}\n", if *s == Stream::Err { "[err] " } else { "" }))
        .collect();

    assert!(
        started.is_some(),
        "the launcher never started:\n{transcript}"
    );
    assert!(
        still_running,
        "the system ended before SIGINT:\n{transcript}"
    );
    assert!(
        status.is_some(),
        "the launcher did not stop within 10 s of SIGINT:\n{transcript}"
    );
    for e in EXPECTED {
        assert!(
            lines
                .iter()
                .any(|(s, l)| *s == Stream::Out && l.contains(e)),
            "missing `{e}` in:\n{transcript}"
        );
    }
    let fault = lines
        .iter()
        .position(|(s, l)| is_fault_report(*s, l))
        .unwrap_or_else(|| panic!("no fault report for faulty (SIGSEGV):\n{transcript}"));
    let after = lines[fault..]
        .iter()
        .filter(|(_, l)| l.starts_with("ping: ") || l.starts_with("pong: "))
        .count();
    assert!(
        after > 0,
        "ping/pong did not go on after the fault:\n{transcript}"
    );
    assert!(
        !lines
            .iter()
            .any(|(_, l)| l.contains("NOT enforced") || l.contains("WRONG")),
        "{transcript}"
    );
    // Only faulty died: no other PD is reported.
    for (s, l) in &lines {
        if *s == Stream::Err && l.starts_with("lions-host: ") {
            assert!(
                !l.starts_with("lions-host: ping:") && !l.starts_with("lions-host: pong:"),
                "unexpected report `{l}` in:\n{transcript}"
            );
        }
    }
}
