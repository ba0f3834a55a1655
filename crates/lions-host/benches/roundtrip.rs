// SPDX-License-Identifier: BSD-2-Clause
//! Host-board round trips: a two-PD system (`bench_a`, `bench_b` of `lions-host-testpd`) measures
//! the median notify round trip (A -> B -> A, through both event loops) and the median PPC round
//! trip, over `LIONS_BENCH_ITERS` iterations (default 20 000). As a peer measured in the same
//! run: the median round trip of a bare eventfd ping-pong between two threads (the floor the
//! host board's wake-ups stand on).
//!
//! `cargo bench -p lions-host --bench roundtrip` (add `-- --no-rt` to skip real-time priorities).

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
  <protection_domain name="bench_a" priority="100">
    <program_image path="lions-host-testpd"/>
  </protection_domain>
  <protection_domain name="bench_b" priority="200">
    <program_image path="lions-host-testpd"/>
  </protection_domain>
  <channel><end pd="bench_a" id="1" pp="true"/><end pd="bench_b" id="1"/></channel>
</system>
"#;

fn eventfd() -> OwnedFd {
    // SAFETY: plain system call, checked before the descriptor is owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn signal(fd: &OwnedFd) {
    let v = 1u64;
    // SAFETY: writes 8 bytes from a live local.
    unsafe { libc::write(fd.as_raw_fd(), (&raw const v).cast(), 8) };
}

fn wait(fd: &OwnedFd) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live local.
    unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
}

/// Median round trip of an eventfd ping-pong between two threads.
fn eventfd_pingpong(n: usize) -> u64 {
    let (ping, pong) = (eventfd(), eventfd());
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..n {
                wait(&ping);
                signal(&pong);
            }
        });
        let mut v: Vec<u64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                signal(&ping);
                wait(&pong);
                u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
            })
            .collect();
        v.sort_unstable();
        v[n / 2]
    })
}

fn main() {
    let no_rt = std::env::args().any(|a| a == "--no-rt");
    let n: usize = std::env::var("LIONS_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-roundtrip");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sys = dir.join("roundtrip.system");
    std::fs::write(&sys, SYSTEM).expect("write system");
    let pd = std::path::Path::new(env!("CARGO_BIN_EXE_lions-host-testpd"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lions-host"));
    cmd.arg("--search-path")
        .arg(pd.parent().expect("bin dir"))
        .arg("--stats");
    if no_rt {
        cmd.arg("--no-rt");
    }
    let mut child = cmd
        .arg(&sys)
        .env("LIONS_BENCH_ITERS", n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lions-host");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let started = Instant::now();
    let mut result = None;
    for line in out.lines() {
        let line = line.expect("read");
        if line.starts_with("bench:") {
            result = Some(line);
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    // SAFETY: plain system call on our child's pid.
    unsafe { libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGINT) };
    let _ = child.wait();
    let line = result.expect("the benchmark PD printed no result");
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            .expect("field")
    };
    let (notify, ppc) = (field("notify_rtt_median_ns"), field("ppc_rtt_median_ns"));
    let floor = eventfd_pingpong(n);
    println!(
        "host board, {n} iterations{}:",
        if no_rt { ", no real-time" } else { "" }
    );
    println!("  notify round trip (A -> B -> A) median: {notify} ns");
    println!("  PPC round trip median:                  {ppc} ns");
    println!("  eventfd ping-pong, two threads, median: {floor} ns (peer)");
    #[allow(clippy::cast_precision_loss)]
    {
        println!(
            "  ratios to the peer: notify {:.2}, PPC {:.2}",
            notify as f64 / floor as f64,
            ppc as f64 / floor as f64
        );
    }
}
