// SPDX-License-Identifier: BSD-2-Clause
//! UDP echo on the host board at saturation: packets per second and CPU seconds per packet of the
//! echo_server example against a Linux UDP echo (socat) measured in the same run over the same
//! path, and the system's notifications per packet from the launcher's counters.
//!
//! `cargo bench -p xtask --bench net_echo` (root or CAP_NET_ADMIN; `ip`, `socat`).
//! `LIONS_BENCH_SECS` (default 5) is the measuring time per peer, `LIONS_BENCH_WINDOW` (default
//! 64) the datagrams kept in flight, `LIONS_BENCH_PAYLOAD` (default 1000) their size,
//! `LIONS_BENCH_LAUNCHER` more `lions-host` options (e.g. `--no-rt`).
//!
//! ## Topology
//!
//! Two network namespaces joined by a veth pair. `gen` (a named namespace, `lionsbench-gen`)
//! holds the load generator at 10.0.3.2. The other is this thread's own (unshared): it holds the
//! veth's other end at 10.0.3.1, routes between it and the TAP `lions0` (10.0.2.1/24) behind which
//! the system's clients sit (10.0.2.10), and runs `socat` as the Linux peer on 10.0.3.1:7777. So
//! both peers are reached from `gen` through the veth and the same kernel; the system's packets
//! also cross the TAP and the system's PDs, `socat`'s cross one more kernel socket instead.
//!
//! ## Placement
//!
//! The example puts its PDs on the first CPU this process may use (real-time priorities from the
//! system description, as the launcher sets them where permitted). So that other load on the
//! machine disturbs both peers alike, `socat` runs there too, at the real-time priority of the
//! system's net driver ([`PEER_PRIO`]), and the generator runs on the last CPU at a real-time
//! priority above both ([`GEN_PRIO`]); where real-time scheduling is not permitted both stay at
//! normal priority.
//! `LIONS_BENCH_PLACE=0` leaves `socat` and the generator wherever Linux puts them.
//!
//! ## Measure
//!
//! A closed loop: the generator keeps `window` datagrams in flight and counts echoes for
//! `secs` seconds (a datagram not answered within 200 ms counts as lost and is replaced). CPU time
//! is user + system time of the echoing processes over the same interval (`/proc/<pid>/stat`):
//! every PD of the system, or the socat process.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Screen, System};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GEN_NS: &str = "lionsbench-gen";
const SYSTEM: (&str, u16) = ("10.0.2.10", 1235);
const SOCAT: (&str, u16) = ("10.0.3.1", 7777);
/// SCHED_FIFO priority of `socat`: the launcher's for the net driver's SDF priority 110.
const PEER_PRIO: i32 = 1 + 110 * 98 / 254;
/// SCHED_FIFO priority of the generator (this thread while it measures).
const GEN_PRIO: i32 = 60;

/// Put process or thread `pid` (0: this thread) on `cpu` under SCHED_FIFO at `prio`, as far as
/// permitted (a refusal leaves it as it was).
fn place(pid: libc::pid_t, cpu: usize, prio: i32) {
    if env_or("LIONS_BENCH_PLACE", 1) == 0 {
        return;
    }
    // SAFETY: plain system calls on live, initialised locals.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set);
        let param = libc::sched_param {
            sched_priority: prio,
        };
        libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param);
    }
}

/// The CPUs this thread may use.
fn allowed() -> libc::cpu_set_t {
    // SAFETY: sched_getaffinity fills a live, zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
        set
    }
}

/// The first and the last CPU in `set`.
fn first_last(set: &libc::cpu_set_t) -> (usize, usize) {
    // SAFETY: reads bits of a live cpu_set_t.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, set) })
        .collect();
    (
        cpus.first().copied().unwrap_or(0),
        cpus.last().copied().unwrap_or(0),
    )
}

/// Run `f` as the generator: this thread on the last CPU it may use, at [`GEN_PRIO`] (as far as
/// permitted); its affinity and normal scheduling are restored afterwards.
fn as_generator<T>(f: impl FnOnce() -> T) -> T {
    let set = allowed();
    place(0, first_last(&set).1, GEN_PRIO);
    let r = f();
    // SAFETY: plain system calls on live, initialised locals.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
    r
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("net_echo: cannot run {}: {e}", args[0]));
    assert!(
        out.status.success(),
        "net_echo: `{}` failed (needs root or CAP_NET_ADMIN): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This thread into a new namespace with the TAP and the veth to `gen` (see the module docs).
fn topology() {
    // SAFETY: unshare(CLONE_NEWNET) changes only this thread's network namespace.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "net_echo: cannot create a network namespace (run as root): {}",
        std::io::Error::last_os_error()
    );
    let _ = Command::new("ip").args(["netns", "del", GEN_NS]).output();
    sh(&["ip", "netns", "add", GEN_NS]);
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "tuntap", "add", "dev", "lions0", "mode", "tap"]);
    sh(&["ip", "addr", "add", "10.0.2.1/24", "dev", "lions0"]);
    sh(&["ip", "link", "set", "lions0", "up"]);
    sh(&[
        "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    sh(&["ip", "link", "set", "veth1", "netns", GEN_NS]);
    sh(&["ip", "addr", "add", "10.0.3.1/24", "dev", "veth0"]);
    sh(&["ip", "link", "set", "veth0", "up"]);
    sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    let g = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", GEN_NS];
        v.extend_from_slice(args);
        sh(&v);
    };
    g(&["ip", "link", "set", "lo", "up"]);
    g(&["ip", "addr", "add", "10.0.3.2/24", "dev", "veth1"]);
    g(&["ip", "link", "set", "veth1", "up"]);
    g(&["ip", "route", "add", "10.0.2.0/24", "via", "10.0.3.1"]);
}

/// A UDP socket in the `gen` namespace, connected to `to`.
fn gen_socket(to: (&str, u16)) -> UdpSocket {
    let (to, port) = (to.0.to_string(), to.1);
    // A thread of its own enters `gen`, so only the socket lives there.
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{GEN_NS}")).unwrap();
        // SAFETY: setns on this thread only, with a namespace fd we hold open.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let s = UdpSocket::bind("10.0.3.2:0").unwrap();
        s.connect((to.as_str(), port)).unwrap();
        s
    })
    .join()
    .unwrap()
}

/// User + system CPU seconds of the processes `pids`.
fn cpu_secs(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            let rest = &s[s.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / hz
        })
        .sum()
}

/// The processes whose executable lies under `dir` (the system's PDs).
fn pids_under(dir: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .is_ok_and(|x| x.to_string_lossy().contains(dir))
        })
        .collect()
}

struct Run {
    echoed: u64,
    lost: u64,
    secs: f64,
    cpu: f64,
}

/// Saturate the echo at `sock` for `secs`; CPU time of `pids` over the same interval.
fn saturate(sock: &UdpSocket, pids: &[u32], secs: u64, window: u64, payload: usize) -> Run {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let msg = vec![0x5a; payload];
    let mut buf = vec![0u8; 65536];
    // Warm up: ARP, first packets.
    for _ in 0..100 {
        sock.send(&msg).unwrap();
        let _ = sock.recv(&mut buf);
    }
    let cpu0 = cpu_secs(pids);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let (mut echoed, mut lost, mut in_flight, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    while Instant::now() < end {
        while in_flight < window {
            if sock.send(&msg).is_ok() {
                in_flight += 1;
            }
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                // socat's pipe may join datagrams: count payloads, not reads.
                bytes += n as u64;
                let k = bytes / payload as u64;
                bytes %= payload as u64;
                echoed += k;
                in_flight = in_flight.saturating_sub(k);
            }
            Err(_) => {
                lost += in_flight;
                in_flight = 0;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pids) - cpu0;
    // Drain what is still in flight.
    while sock.recv(&mut buf).is_ok() {}
    Run {
        echoed,
        lost,
        secs,
        cpu,
    }
}

fn report(name: &str, r: &Run) -> f64 {
    let pps = r.echoed as f64 / r.secs;
    println!(
        "{name:<12} {pps:>10.0} packets/s  {:>8.2} us CPU/packet  ({} echoed, {} lost, {:.2} CPU s in {:.2} s)",
        r.cpu / r.echoed.max(1) as f64 * 1e6,
        r.echoed,
        r.lost,
        r.cpu,
        r.secs
    );
    pps
}

fn main() {
    let secs = env_or("LIONS_BENCH_SECS", 5);
    let window = env_or("LIONS_BENCH_WINDOW", 64);
    let payload = env_or("LIONS_BENCH_PAYLOAD", 1000) as usize;
    topology();

    // The Linux peer: socat echoing UDP through a pipe, in this (routing) namespace.
    let mut socat: Child = Command::new("socat")
        .args(["-b", "65536", "UDP4-LISTEN:7777,reuseaddr", "PIPE"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("net_echo: cannot run socat ({e}): install socat"));
    place(
        socat.id() as libc::pid_t,
        first_last(&allowed()).0,
        PEER_PRIO,
    );
    std::thread::sleep(Duration::from_millis(300));
    let sock = gen_socket(SOCAT);
    let linux = as_generator(|| saturate(&sock, &[socat.id()], secs, window, payload));
    let _ = socat.kill();
    let _ = socat.wait();

    // The system, release build, with the launcher's counters at exit.
    let extra = std::env::var("LIONS_BENCH_LAUNCHER").unwrap_or_default();
    let mut args = vec!["--release", "--", "--stats"];
    args.extend(extra.split_whitespace());
    let mut sys = System::start_with("echo_server", &args, &[]);
    sys.expect("both clients up", |s: &Screen| {
        let t = s.text();
        t.contains("client0: 10.0.2.10/24") && t.contains("client1: 10.0.2.11/24")
    });
    // This checkout's PDs only (another checkout may run the example at the same time).
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    let dir = std::fs::canonicalize(&target).unwrap_or(target);
    let pids = pids_under(&format!("{}/lions/echo_server/", dir.display()));
    let names: Vec<String> = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .collect();
    assert_eq!(
        pids.len(),
        10,
        "PD processes of echo_server: {names:?}\n{}",
        sys.with_screen(Screen::transcript)
    );
    let sock = gen_socket(SYSTEM);
    let lions = as_generator(|| saturate(&sock, &pids, secs, window, payload));
    sys.ctrl_c();
    // The launcher prints its counters as it ends; its stderr may still be on its way to us.
    let rows = |s: &Screen| -> Vec<String> {
        s.errors
            .iter()
            .filter(|l| l.starts_with("lions-host: "))
            .cloned()
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(5);
    let mut table = sys.with_screen(rows);
    while table.len() <= pids.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        table = sys.with_screen(rows);
    }
    assert!(
        table.len() > pids.len(),
        "no complete counter table from the launcher (--stats):\n{}",
        sys.stop()
    );
    let column = |i: usize| -> u64 {
        table
            .iter()
            .filter_map(|l| l.split_whitespace().nth(i)?.parse::<u64>().ok())
            .sum()
    };
    let (notifications, ppcs) = (column(2), column(4));
    let _ = Command::new("ip").args(["netns", "del", GEN_NS]).output();

    println!(
        "UDP echo, {payload}-byte datagrams, {window} in flight, {secs} s each, from namespace {GEN_NS} over a veth:"
    );
    let l = report("linux socat", &linux);
    let s = report("echo_server", &lions);
    println!("echo_server / socat: {:.2}x packets/s", s / l);
    // Every packet the system echoed went in and out; the counters cover the whole run (warm-up,
    // ARP and greetings are a few hundred of them).
    let packets = lions.echoed + 100;
    println!(
        "notifications per echoed packet (all PDs, launcher --stats): {:.2} ({notifications} for {packets})",
        notifications as f64 / packets as f64
    );
    println!(
        "PPCs per echoed packet: {:.2}; per PD (launcher --stats):",
        ppcs as f64 / packets as f64
    );
    for l in &table {
        println!("  {}", l.trim_start_matches("lions-host: "));
    }
}
