// SPDX-License-Identifier: BSD-2-Clause
//! File-system throughput on the host board: sequential write and read MB/s through the whole
//! fileio stack, against the same FAT backend used directly in one process, in the same run.
//!
//! `cargo bench -p xtask --bench fileio` (`LIONS_BENCH_MIB`, default 16: the file's size).
//!
//! - **System**: a fresh disk from `examples/fileio/make-disk.sh` (partition 1 large enough),
//!   then `cargo xtask run fileio --release` on a pty with `LIONS_HOST_BLK_IMAGE` naming it and
//!   `LIONS_FILEIO_BENCH=<MiB>`: the `fileio` PD writes `/bench.bin` in 32 KiB FS requests, syncs
//!   and closes it, then reads it back in 32 KiB requests checking every byte, and prints the
//!   times it measured with the timer driver (`fileio: bench write|read <bytes> bytes in <ns>
//!   ns`). Path: client → FS queues → `fs_fat` (FsServer, 4 KiB bounce per backend call, FatFs
//!   on lamfat with the library's block cache) → queued blk client (`QueuedBlk`: posted writes,
//!   prefetched reads) → `blk_virt` → `blk_driver_host` (`pread`/`pwrite`, FLUSH = `fdatasync`)
//!   → the image file.
//! - **Peer**: `fileio_direct` (examples/fileio, release build) on a copy of the same fresh image:
//!   the same `FatFs` with the same cache configuration over the same 4 KiB-block interface,
//!   `pread`/`pwrite`/`fdatasync` on the file, the same 32 KiB writes and reads and byte checks,
//!   timed with the monotonic clock.
//! - **Peer in 4 KiB calls** (a diagnostic, on another copy): the same, with each backend call
//!   moving 4 KiB, as the FS server's bounce buffer makes it: the part of the gap that is the
//!   FAT backend called eight times as often, not the queues and processes in between.
//!
//! Both images are fresh copies in the page cache, so both measure the software path, not the
//! disk (except each write's final sync).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Screen, System};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEFAULT_MIB: u64 = 16;

/// One measurement: bytes moved and nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Bench {
    bytes: u64,
    ns: u64,
}

impl Bench {
    fn mb_per_s(self) -> f64 {
        self.bytes as f64 / self.ns.max(1) as f64 * 1e3
    }
}

/// The `bench <what> <bytes> bytes in <ns> ns` line of `what` in `text`.
fn parse(text: &str, what: &str) -> Option<Bench> {
    let marker = format!("bench {what} ");
    let line = text.lines().find(|l| l.contains(&marker))?;
    let rest = &line[line.find(&marker)? + marker.len()..];
    let (bytes, rest) = rest.split_once(" bytes in ")?;
    let (ns, _) = rest.split_once(" ns")?;
    Some(Bench {
        bytes: bytes.trim().parse().ok()?,
        ns: ns.trim().parse().ok()?,
    })
}

fn make_disk(root: &Path, img: &Path, p1_mib: u64) {
    let out = Command::new("bash")
        .arg(root.join("examples/fileio/make-disk.sh"))
        .arg(img)
        .arg(p1_mib.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-disk.sh: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The system's (write, read).
fn system(img: &Path, mib: u64) -> (Bench, Bench) {
    let count = mib.to_string();
    let mut sys = System::start_with(
        "fileio",
        &["--release"],
        &[
            ("LIONS_HOST_BLK_IMAGE", img.to_str().unwrap()),
            ("LIONS_FILEIO_BENCH", &count),
        ],
    );
    let finished = |s: &Screen| {
        let t = s.text();
        t.contains("fileio: done in ") || t.contains("FAILED")
    };
    assert!(
        sys.wait_for(Duration::from_secs(900), finished),
        "no `fileio: done`:\n{}",
        sys.stop()
    );
    let transcript = sys.stop();
    let text = sys.with_screen(Screen::text);
    assert!(!text.contains("FAILED"), "{transcript}");
    match (parse(&text, "write"), parse(&text, "read")) {
        (Some(w), Some(r)) => (w, r),
        _ => panic!("no bench lines:\n{transcript}"),
    }
}

/// The peer's (write, read), each backend call moving `call` bytes.
fn peer(root: &Path, img: &Path, mib: u64, call: usize) -> (Bench, Bench) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "lions-example-fileio",
            "--bin",
            "fileio_direct",
        ])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build of fileio_direct: {status}");
    let exe = xtask::target_dir(root).join("release/fileio_direct");
    let out = Command::new(&exe)
        .arg(img)
        .arg(mib.to_string())
        .arg(call.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}\n{text}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    match (parse(&text, "write"), parse(&text, "read")) {
        (Some(w), Some(r)) => (w, r),
        _ => panic!("no bench lines from fileio_direct:\n{text}"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("LIONS_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_MIB);
    let root = xtask::workspace_root();
    let dir = std::env::temp_dir().join(format!("lions-fileio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Room for the file, its FAT and the example's own files; make-disk.sh's 4 KiB clusters
    // make partitions of 241..=271 MiB neither FAT16 nor FAT32.
    let p1_mib = match (mib + mib / 4 + 16).max(64) {
        241..=271 => 272,
        m => m,
    };
    let sys_img = dir.join("system.img");
    let peer_img = dir.join("direct.img");
    let small_img = dir.join("direct-4k.img");
    make_disk(&root, &sys_img, p1_mib);
    std::fs::copy(&sys_img, &peer_img).unwrap();
    std::fs::copy(&sys_img, &small_img).unwrap();

    let (pw, pr) = peer(&root, &peer_img, mib, 32 * 1024);
    let (qw, qr) = peer(&root, &small_img, mib, 4096);
    let (sw, sr) = system(&sys_img, mib);
    std::fs::remove_dir_all(&dir).unwrap();

    println!(
        "fileio, {mib} MiB file, 32 KiB requests, fresh {p1_mib} MiB FAT partition (4 KiB clusters):"
    );
    println!("  client -> fs_fat -> blk_virt -> blk_driver_host -> image file:");
    println!("    write (incl. sync, close): {:>8.2} MB/s", sw.mb_per_s());
    println!("    read (checked):            {:>8.2} MB/s", sr.mb_per_s());
    println!("  peer: the same FatFs on the image in one process (fileio_direct):");
    println!("    write (incl. sync, close): {:>8.2} MB/s", pw.mb_per_s());
    println!("    read (checked):            {:>8.2} MB/s", pr.mb_per_s());
    println!(
        "  ratio system/peer: {:.3} (write), {:.3} (read)",
        sw.mb_per_s() / pw.mb_per_s(),
        sr.mb_per_s() / pr.mb_per_s()
    );
    println!("  diagnostic: the peer with 4 KiB backend calls (as the FS server makes them):");
    println!("    write (incl. sync, close): {:>8.2} MB/s", qw.mb_per_s());
    println!("    read (checked):            {:>8.2} MB/s", qr.mb_per_s());
}
