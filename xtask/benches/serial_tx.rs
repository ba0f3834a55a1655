// SPDX-License-Identifier: BSD-2-Clause
//! Serial Tx throughput on the host board: bytes per second from a client, through the Tx
//! virtualiser and the host serial driver, to the terminal (a pty), against a peer measured in the
//! same run: one process writing the same bytes straight into a pty in the same raw mode.
//!
//! `cargo bench -p xtask --bench serial_tx` (`LIONS_BENCH_BYTES`, default 8 MiB).
//!
//! - **System**: `cargo xtask run serial --release` on a pty with `LIONS_SERIAL_FLOOD=<bytes>`, so `client0`
//!   writes that many bytes of 64-byte lines between a `flood start` and a `flood done` line (see
//!   `examples/serial/src/bin/serial_client.rs`); the time is from seeing the first marker on the
//!   pty master to seeing the second.
//! - **Peer**: a thread writes the same lines (each `\r\n`-terminated, as the client library sends
//!   them) into a raw pty slave while this thread reads the master until all bytes arrived.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Screen, System};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const DEFAULT_BYTES: u64 = 8 << 20;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The system's throughput in bytes/s.
fn system(bytes: u64, args: &[&str]) -> f64 {
    let count = bytes.to_string();
    let mut sys = System::start_with("serial", args, &[("LIONS_SERIAL_FLOOD", &count)]);
    let seen = |needle: &'static [u8]| {
        move |s: &Screen| {
            // Only look at the tail: the screen grows to the whole flood.
            let from = s.bytes.len().saturating_sub(64 << 10);
            find(&s.bytes[from..], needle).is_some()
        }
    };
    assert!(
        sys.wait_for(Duration::from_secs(60), seen(b"flood start")),
        "no flood start:\n{}",
        sys.stop()
    );
    let t = Instant::now();
    assert!(
        sys.wait_for(Duration::from_secs(600), seen(b"flood done")),
        "no flood done:\n{}",
        sys.stop()
    );
    let secs = t.elapsed().as_secs_f64();
    let got = sys.with_screen(|s| s.bytes.iter().filter(|&&b| b == b'\n').count());
    sys.stop();
    assert!(
        got as u64 >= bytes / 64,
        "lines lost: {got} line ends for {bytes} bytes"
    );
    bytes as f64 / secs
}

/// The peer's throughput in bytes/s.
fn peer(bytes: u64) -> f64 {
    let (master, slave_name) = common::open_pty();
    let mut slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_name)
        .unwrap();
    // SAFETY: termios calls on the slave we opened, with a live struct.
    unsafe {
        use std::os::fd::AsRawFd;
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let mut master = std::fs::File::from(master);
    let lines = bytes.div_ceil(64);
    let total = lines * 65;
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        for i in 0..lines {
            let mut line = serial_example_line(i);
            line.push(b'\n');
            slave.write_all(&line).unwrap();
        }
        slave
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0u64;
    while read < total {
        read += master.read(&mut buf).unwrap() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(writer.join().unwrap());
    total as f64 / secs
}

/// The client's line `i` as it reaches the terminal, without its final `\n` (appended by the
/// caller): `serial_example::flood_line` with the library's `\r` before the line end.
fn serial_example_line(i: u64) -> Vec<u8> {
    let mut l = format!("flood {:09} ", i % 1_000_000_000).into_bytes();
    l.extend_from_slice(b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK\r");
    l
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bytes = std::env::var("LIONS_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_BYTES);
    let peer_bps = peer(bytes);
    let rt = system(bytes, &["--release"]);
    let no_rt = system(bytes, &["--release", "--", "--no-rt"]);
    println!("serial Tx, {bytes} bytes of 64-byte lines to a pty:");
    println!("  client -> virt_tx -> host driver -> pty:");
    println!(
        "    real-time priorities (where permitted): {:>8.2} MB/s",
        rt / 1e6
    );
    println!(
        "    normal scheduling (--no-rt):            {:>8.2} MB/s",
        no_rt / 1e6
    );
    println!(
        "  peer: one writer straight into the pty:   {:>8.2} MB/s",
        peer_bps / 1e6
    );
    println!(
        "  ratio system/peer: {:.3} (real-time), {:.3} (--no-rt)",
        rt / peer_bps,
        no_rt / peer_bps
    );
}
