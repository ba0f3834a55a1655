// SPDX-License-Identifier: BSD-2-Clause
//! Component restart and live policy swap on the host board (issue 12, items 7 and 8), with
//! `echo_server` under load over the user-mode network (no privileges needed).
//!
//! The system runs with `--restart`; a thread sends UDP datagrams (sequence-numbered, one every
//! 2 ms) to client 0 through a forwarded host port and records every echo. Then, one at a time,
//! the Tx virt, the Rx virt, client 0's copier, the serial Tx virt and the (user-mode network)
//! driver are killed with SIGKILL;
//! the launcher restarts each and it resumes from shared memory. Afterwards the Tx virt is
//! swapped live for the strict-priority build and back (`cargo xtask swap`). For each event the
//! test measures the longest pause between two echoes around it (the service interruption) and
//! the datagrams lost; it requires the pause under a second and loss no more than what was sent
//! during the pause plus what the queues on the way could hold. Numbers are printed (`event
//! ...` lines).
//!
//! Before the first kill and after each event the load pauses until the system is quiescent,
//! and `cargo xtask account echo_server` (a snapshot of all shared memory through the
//! launcher's control FIFO) must find every net DMA buffer (the Rx DMA region, each client's Rx
//! and Tx regions) in exactly one queue or held by one driver, copier or client: none lost,
//! none twice, and the driver's own word on what it holds (Rx and Tx) agreeing with the queue
//! indices. Its counts and time are printed (`account ...` lines).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::harness::Trial;
use common::{Screen, System};
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT0: &str = "10.0.2.10";
const UDP_PORT: u16 = 1235;
const TCP_PORT: u16 = 1236;
/// Datagrams in flight at most on the way (socket slots, queues): the loss allowed beyond
/// those sent while a component was down.
const IN_FLIGHT: usize = 64;

fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The pid of the PD process named `pd` (its `argv[0]`) whose parent is `launcher`.
fn pd_pid(launcher: u32, pd: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let arg0 = cmdline.split(|&b| b == 0).next()?;
        (ppid == launcher && arg0 == pd.as_bytes()).then_some(pid)
    })
}

/// The load: send times by sequence number, echo times by sequence number.
#[derive(Default)]
struct Load {
    sent: Vec<Instant>,
    echoed: Vec<Option<Instant>>,
}

/// `xtask account echo_server` on the running system once traffic is paused (`paused` set):
/// retried for up to 2 s (a frame the gateway sends on its own, e.g. an ARP refresh, may be in
/// flight); panics with the last account when it never comes out clean. Returns its first line
/// (`net buffers: N of N accounted for exactly once`) and the time the last try took.
fn account_all_home(what: &str) -> (String, Duration) {
    let mut last = String::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["account", "echo_server"])
            .output()
            .unwrap();
        let took = t.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            let first = stdout.lines().next().unwrap_or_default().to_owned();
            assert!(
                first.starts_with("net buffers: ") && first.contains("accounted for exactly once"),
                "{what}: unexpected account:\n{stdout}"
            );
            let nums: Vec<&str> = first.split_whitespace().collect();
            assert_eq!(nums[2], nums[4], "{what}: {first}");
            // echo_server: 512 Rx DMA buffers, and 512 Rx and 512 Tx for each of its 2 clients.
            assert_eq!(nums[4], "2560", "{what}: every pool found: {first}");
            // The user-mode network driver's own word on both directions, checked.
            let said = stdout
                .lines()
                .filter(|l| l.contains("net_driver says it holds") && l.contains("agrees with"))
                .count();
            assert_eq!(said, 2, "{what}: the driver's word on Rx and Tx:\n{stdout}");
            for line in stdout.lines() {
                eprintln!("account {what}: {line}");
            }
            return (first, took);
        }
        last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    panic!("{what}: the buffer account never came out clean:\n{last}");
}

/// The account catches a buffer really lost: a snapshot of the running (quiescent) system in
/// which the Rx virt "dropped" the newest buffer it gave the driver (the free queue's tail one
/// short, as if it never published it) is refused, naming that buffer as lost.
fn lost_buffer_is_caught() {
    let out = xtask::tasks::output_dir(
        &xtask::workspace_root(),
        "echo_server",
        xtask::cli::Board::Host,
    );
    let dir = xtask::account::request_snapshot(&out, &xtask::tasks::control_fifo(&out)).unwrap();
    let index = std::fs::read_to_string(dir.join("index")).unwrap();
    let file = index
        .lines()
        .find_map(|l| {
            l.strip_suffix(" net/net/queue/net_driver/net_virt_rx/free")
                .and_then(|l| l.split(' ').next())
        })
        .unwrap();
    let path = dir.join(file);
    let mut free = std::fs::read(&path).unwrap();
    let (tail, head) = (
        u16::from_le_bytes([free[0], free[1]]),
        u16::from_le_bytes([free[2], free[3]]),
    );
    assert_ne!(tail, head, "the driver's free queue holds buffers");
    let dropped = tail.wrapping_sub(1);
    free[..2].copy_from_slice(&dropped.to_le_bytes());
    std::fs::write(&path, &free).unwrap();
    let res = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["account", "echo_server", "--snapshot"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!res.status.success(), "a lost buffer must fail:\n{stdout}");
    assert!(stdout.starts_with("net buffers: 2559 of 2560"), "{stdout}");
    let lost: Vec<&str> = stdout.lines().filter(|l| l.contains("is lost")).collect();
    assert_eq!(lost.len(), 1, "exactly the dropped buffer:\n{stdout}");
    assert!(lost[0].contains("Rx DMA buffer"), "{stdout}");
    let lost = lost[0].trim();
    eprintln!("account of a snapshot with one buffer dropped: {lost} (caught)");
}

/// `xtask account fileio` once the bench is over: retried for up to 2 s (the FS server may still
/// be closing the file); panics with the last account unless nothing is lent, owed, held or
/// waiting. Returns the account and the time the last try took.
fn blk_account_all_home() -> (String, Duration) {
    let mut last = String::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["account", "fileio"])
            .output()
            .unwrap();
        let took = t.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let home = out.status.success()
            && stdout.contains(
                "blk units: 0 lent to the driver; driver holds 0 requests, 0 waiting for it, 0 \
                 answers waiting",
            )
            && stdout.contains("fatfs: 0 requests waiting, 0 owed by the virt, 0 answers waiting");
        if home {
            return (stdout, took);
        }
        last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    panic!("after the run, the blk virt still has something out:\n{last}");
}

/// One kill (or swap) and what it cost.
struct Outcome {
    /// The longest pause between two echoes around the event: the service interruption.
    pause: Duration,
    /// Datagrams sent around the event and never echoed.
    lost: usize,
    /// Datagrams sent during that pause (what was in flight while the component was down).
    sent_in_pause: usize,
}

/// Wait until a datagram sent after `t0` is echoed (at most 5 s), then `settle` more; measure
/// the datagrams sent from 0.5 s before `t0` until 0.3 s before the end.
fn measure(load: &Mutex<Load>, t0: Instant, settle: Duration) -> Outcome {
    let end = t0 + Duration::from_secs(5);
    loop {
        let echoed_after = {
            let l = load.lock().unwrap();
            l.sent
                .iter()
                .zip(&l.echoed)
                .any(|(s, e)| *s >= t0 && e.is_some())
        };
        if echoed_after {
            break;
        }
        assert!(Instant::now() < end, "no echo within 5 s of the event");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(settle);
    let until = Instant::now() - Duration::from_millis(300);
    let from = t0 - Duration::from_millis(500);
    let l = load.lock().unwrap();
    let window: Vec<(Instant, Option<Instant>)> = l
        .sent
        .iter()
        .zip(&l.echoed)
        .filter(|(s, _)| **s >= from && **s <= until)
        .map(|(s, e)| (*s, *e))
        .collect();
    let lost = window.iter().filter(|(_, e)| e.is_none()).count();
    let mut echoes: Vec<Instant> = window.iter().filter_map(|(_, e)| *e).collect();
    echoes.sort_unstable();
    let (pause, at) = echoes
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or((Duration::ZERO, from));
    let sent_in_pause = window
        .iter()
        .filter(|(s, _)| *s >= at && *s <= at + pause)
        .count();
    Outcome {
        pause,
        lost,
        sent_in_pause,
    }
}

fn restart_and_swap_under_load() {
    let port = free_port();
    let forward = format!("udp:{port}:{CLIENT0}:{UDP_PORT},tcp:{port}:{CLIENT0}:{TCP_PORT}");
    let mut sys = System::start_with(
        "echo_server",
        &["--", "--restart", "--max-restarts", "10"],
        &[("LIONS_NET", "user"), ("LIONS_NET_FORWARD", &forward)],
    );
    sys.expect("both clients up", |s: &Screen| {
        let t = s.text();
        t.contains("client0: 10.0.2.10/24") && t.contains("client1: 10.0.2.11/24")
    });
    let launcher = sys.pid();

    let load = Arc::new(Mutex::new(Load::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (rx, l2, s2) = (sock.try_clone().unwrap(), load.clone(), stop.clone());
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s2.load(Ordering::Relaxed) {
            if let Ok(n) = rx.recv(&mut buf)
                && n == 64
            {
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                let mut l = l2.lock().unwrap();
                if let Some(e) = l.echoed.get_mut(seq) {
                    assert!(e.is_none(), "datagram {seq} echoed twice");
                    *e = Some(Instant::now());
                }
            }
        }
    });
    let paused = Arc::new(AtomicBool::new(false));
    let (l3, s3, p3) = (load.clone(), stop.clone(), paused.clone());
    let sender = std::thread::spawn(move || {
        let mut seq = 0u32;
        while !s3.load(Ordering::Relaxed) {
            if p3.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let mut msg = seq.to_be_bytes().to_vec();
            msg.resize(64, seq as u8);
            {
                let mut l = l3.lock().unwrap();
                l.sent.push(Instant::now());
                l.echoed.push(None);
            }
            let _ = sock.send(&msg);
            seq += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    // Warm up: the first datagrams wait for the first contact (ARP) with the client.
    std::thread::sleep(Duration::from_secs(2));
    let before = {
        let l = load.lock().unwrap();
        l.echoed.iter().filter(|e| e.is_some()).count()
    };
    assert!(before > 100, "echo works before any kill: {before} echoed");

    // Every buffer home with traffic paused: before any kill, and after each event.
    let mut accounts = Vec::new();
    let mut account = |what: &str| {
        paused.store(true, Ordering::Relaxed);
        accounts.push((what.to_owned(), account_all_home(what)));
        paused.store(false, Ordering::Relaxed);
        // Load again for the next event's measurement window (from 0.5 s before it).
        std::thread::sleep(Duration::from_millis(1000));
    };
    account("before any kill");

    let mut report = Vec::new();
    for pd in [
        "net_virt_tx",
        "net_virt_rx",
        "net_copy0",
        "serial_virt_tx",
        "net_driver",
    ] {
        let pid = pd_pid(launcher, pd).unwrap_or_else(|| panic!("no process for {pd}"));
        let t0 = Instant::now();
        // SAFETY: kill with a pid we just found as a child of our launcher.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        let o = measure(&load, t0, Duration::from_millis(1500));
        sys.expect(&format!("{pd} restarted"), |s: &Screen| {
            s.errors
                .iter()
                .any(|l| l.contains(&format!("lions-host: {pd}: restarting")))
        });
        report.push((format!("kill {pd}"), o));
        account(&format!("after kill {pd}"));
    }
    for binary in ["net_virt_tx_priority", "net_virt_tx"] {
        let t0 = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["swap", "echo_server", "net_virt_tx", binary])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xtask swap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The swap happens when the command returns (after its build): settle from there.
        let o = measure(&load, Instant::now(), Duration::from_millis(1500));
        let _ = t0;
        let image = format!("net_virt_tx@{binary}.elf");
        sys.expect(&format!("swapped to {binary}"), |s: &Screen| {
            s.errors
                .iter()
                .any(|l| l.contains("lions-host: net_virt_tx: started again") && l.contains(&image))
        });
        report.push((format!("swap net_virt_tx -> {binary}"), o));
        account(&format!("after swap net_virt_tx -> {binary}"));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    reader.join().unwrap();
    let (sent, echoed) = {
        let l = load.lock().unwrap();
        (
            l.sent.len(),
            l.echoed.iter().filter(|e| e.is_some()).count(),
        )
    };
    eprintln!("load: {sent} datagrams sent, {echoed} echoed");
    for (what, o) in &report {
        eprintln!(
            "event {what}: longest pause in echoes {:.1} ms; lost {} (sent during the pause {})",
            o.pause.as_secs_f64() * 1e3,
            o.lost,
            o.sent_in_pause
        );
    }
    lost_buffer_is_caught();
    // The launcher's own report of each snapshot: every PD stopped while it was copied.
    sys.with_screen(|s| {
        let snaps: Vec<&String> = s
            .errors
            .iter()
            .filter(|l| l.contains("lions-host: snapshot:"))
            .collect();
        assert!(snaps.len() >= accounts.len(), "a snapshot per account");
        for l in snaps {
            eprintln!("{l}");
            assert!(!l.contains("may be torn"), "{l}");
        }
    });
    for (what, (first, took)) in &accounts {
        eprintln!(
            "account {what}: {first} (snapshot and account {:.1} ms)",
            took.as_secs_f64() * 1e3
        );
    }
    for (what, o) in &report {
        assert!(
            o.pause < Duration::from_secs(1),
            "{what}: service interrupted for {:?}",
            o.pause
        );
        assert!(
            o.lost <= o.sent_in_pause + IN_FLIGHT,
            "{what}: lost {} (sent during the pause {})",
            o.lost,
            o.sent_in_pause
        );
    }
    let status = sys.ctrl_c().unwrap_or_else(|| {
        panic!(
            "the system did not stop on Ctrl-C:\n{}",
            sys.with_screen(Screen::transcript)
        )
    });
    sys.with_screen(|s| {
        assert_eq!(status.code(), Some(0), "{}", s.transcript());
    });
}

/// `fileio` in bench mode (a 32 MiB file written and read back through the FS server, the blk
/// virt and the driver) while the blk virt is SIGKILLed three times, 150 ms apart: each time the
/// launcher restarts it, it rebuilds its driver ids from the queues, and the client finishes
/// without an error, its data checked on read-back. Afterwards `xtask account fileio` finds
/// nothing the blk virt lent out still out: no data-region unit at the driver, no request owed,
/// held or waiting.
fn blk_virt_restarts_under_fileio_load() {
    let root = xtask::workspace_root();
    let dir = std::env::temp_dir().join(format!("lions-restart-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(root.join("examples/fileio/make-disk.sh"))
        .arg(&img)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-disk.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sys = System::start_with(
        "fileio",
        &["--", "--restart", "--max-restarts", "10"],
        &[
            ("LIONS_HOST_BLK_IMAGE", img.to_str().unwrap()),
            ("LIONS_FILEIO_BENCH", "32"),
        ],
    );
    sys.expect("the bench started", |s: &Screen| {
        s.text().contains("fileio: bench:")
    });
    let launcher = sys.pid();
    let mut kills = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        if sys.with_screen(|s| s.text().contains("fileio: done")) {
            break;
        }
        let pid = pd_pid(launcher, "blk_virt").expect("a blk_virt process");
        // SAFETY: kill with a pid we just found as a child of our launcher.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        kills.push(Instant::now());
        let n = kills.len();
        sys.expect("the blk virt restarted", |s: &Screen| {
            s.errors
                .iter()
                .filter(|l| l.contains("lions-host: blk_virt: restarting"))
                .count()
                >= n
        });
    }
    let done = sys.wait_for(Duration::from_secs(120), |s: &Screen| {
        let t = s.text();
        t.contains("fileio: done") || t.contains("FAILED")
    });
    let text = sys.with_screen(Screen::text);
    // The run is over: nothing the blk virt lent out may still be out (every data-region unit
    // home with the FS server, nothing owed, held or waiting), after its restarts.
    let account = if done && !text.contains("FAILED") {
        Some(blk_account_all_home())
    } else {
        None
    };
    let transcript = sys.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(done, "fileio did not finish:\n{transcript}");
    assert!(!text.contains("FAILED"), "fileio failed:\n{transcript}");
    assert!(
        !kills.is_empty(),
        "the blk virt was killed during the bench"
    );
    for line in text.lines().filter(|l| l.contains("fileio: bench")) {
        eprintln!("{}", line.trim());
    }
    eprintln!(
        "blk_virt killed {} times during the bench; fileio done, data checked",
        kills.len()
    );
    if let Some((account, took)) = account {
        for line in account.lines() {
            eprintln!("account after the run: {line}");
        }
        eprintln!(
            "account after the run: snapshot and account {:.1} ms",
            took.as_secs_f64() * 1e3
        );
    }
}

fn main() -> ExitCode {
    let tools = common::harness::missing_tools(&[("sfdisk", "fdisk"), ("mkfs.fat", "dosfstools")]);
    common::harness::run(vec![
        Trial {
            name: "restart_and_swap_under_load",
            run: restart_and_swap_under_load,
            not_run: None,
        },
        Trial {
            name: "blk_virt_restarts_under_fileio_load",
            run: blk_virt_restarts_under_fileio_load,
            not_run: tools,
        },
    ])
}
