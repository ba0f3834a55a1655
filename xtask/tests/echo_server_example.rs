// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run echo_server` on the host board, driven from Linux with real tools.
//!
//! - Over a TAP interface inside a network namespace that the test creates (so it touches no
//!   interface of the machine): `ping`, UDP echo with `socat`, TCP echo with `socat`, against both
//!   clients, then a UDP burst larger than every queue on the way. Needs root or CAP_NET_ADMIN (a
//!   network namespace and a TAP), and `ip` (iproute2), `ping` (iputils-ping) and `socat`.
//!   Without them the test is reported as **not run** with what is missing (`test ... ignored,
//!   not run: ...`; counted as ignored, never as passed); `-- --include-ignored` runs it anyway
//!   and it fails saying the same. Everything the system needs from outside (the sdfgen venv
//!   from PyPI, crates) is built by `xtask build echo_server` *before* the test enters its
//!   namespace, which has no route out.
//! - Over the user-mode network (`LIONS_NET=user`, no privileges): first the README's own
//!   `echo hello | socat - TCP:127.0.0.1:PORT` to each client, one right after the other (socat's
//!   default 0.5 s wait after its input ends: the gateway's first contact with each client must
//!   answer within it, which a 1 s ARP stall did not), then UDP and TCP echo of both clients
//!   through host ports on 127.0.0.1 forwarded by the driver (`LIONS_NET_FORWARD`). The same
//!   again with the paper's first broadcast scheme (`LIONS_BROADCAST=arp`: the ARP responder
//!   answers for both clients and alone receives broadcasts).
//!
//! The two tests take turns (one system build directory); the runner is
//! [`common::harness`] (`harness = false`), which can report a test as not run.
//!
//! The namespace: the test thread `unshare`s its network namespace, so everything it starts (the
//! system, `ip`, `ping`, `socat`) and every socket it opens lives there, with only `lo` and the
//! TAP `lions0` (10.0.2.1/24 on the Linux side; the clients are 10.0.2.10 and 10.0.2.11).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::harness::{Trial, missing_tools};
use common::{Screen, System};
use std::collections::HashSet;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const CLIENTS: [&str; 2] = ["10.0.2.10", "10.0.2.11"];
const UDP_PORT: u16 = 1235;
const TCP_PORT: u16 = 1236;

/// One system at a time: both tests build and run `echo_server` in the same directory.
static ONE_SYSTEM: Mutex<()> = Mutex::new(());

/// Run a command, failing the test with a clear message when it cannot be started.
fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("echo_server test: cannot run {what} ({e}); install iproute2, iputils-ping, socat")
    })
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args), "`ip`");
    assert!(
        out.status.success(),
        "echo_server test: `ip {}` failed (needs root or CAP_NET_ADMIN): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Move this thread into a new network namespace with the TAP `lions0` up at 10.0.2.1/24.
fn enter_namespace() {
    // SAFETY: unshare(CLONE_NEWNET) changes only this thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!(
            "echo_server test: cannot create a network namespace ({}): run it as root or with \
             CAP_NET_ADMIN",
            std::io::Error::last_os_error()
        );
    }
    ip(&["link", "set", "lo", "up"]);
    ip(&["tuntap", "add", "dev", "lions0", "mode", "tap"]);
    ip(&["addr", "add", "10.0.2.1/24", "dev", "lions0"]);
    ip(&["link", "set", "lions0", "up"]);
}

/// `socat` between `input` and `addr`; returns what came back.
fn socat(addr: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("socat")
        .args(["-t", "5", "-T", "10", "-", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("echo_server test: cannot run socat ({e}): install socat"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "socat {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Why the TAP test cannot run here, if it cannot: no network namespace can be made (not root,
/// no CAP_NET_ADMIN), no TAP device node, or a tool missing.
fn tap_not_runnable() -> Option<String> {
    if let Some(why) = missing_tools(&[
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("socat", "socat"),
    ]) {
        return Some(why);
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun (the TAP driver)".into());
    }
    // A thread of its own tries: its namespace ends with it.
    let probe = std::thread::spawn(|| {
        // SAFETY: unshare(CLONE_NEWNET) changes only this (short-lived) thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            None
        } else {
            Some(std::io::Error::last_os_error())
        }
    });
    probe.join().unwrap().map(|e| {
        format!(
            "needs root or CAP_NET_ADMIN for a network namespace and a TAP (unshare: {e}); \
             the user-mode network test runs without it"
        )
    })
}

/// `xtask build echo_server` here, where PyPI and crates.io are reachable (the namespace has no
/// route out): the venv is made and everything built, so `xtask run` in the namespace only
/// reruns the metaprogram and finds the build up to date.
fn build_before_the_namespace() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["build", "echo_server"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xtask build echo_server ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn echo_server_over_a_tap_in_a_namespace() {
    let _one = ONE_SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    build_before_the_namespace();
    enter_namespace();
    let mut sys = System::start("echo_server");
    sys.expect("both clients up", |s: &Screen| {
        let t = s.text();
        t.contains("client0: 10.0.2.10/24") && t.contains("client1: 10.0.2.11/24")
    });

    for addr in CLIENTS {
        // ICMP echo (and ARP before it).
        let out = run(
            Command::new("ping").args(["-c", "3", "-i", "0.2", "-W", "5", addr]),
            "`ping`",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 0% packet loss"),
            "ping {addr}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // UDP echo: one datagram, back unchanged.
        let line = format!("a datagram for {addr}\n");
        let back = socat(&format!("UDP:{addr}:{UDP_PORT}"), line.as_bytes());
        assert_eq!(String::from_utf8_lossy(&back), line, "UDP echo of {addr}");

        // TCP echo: a stream larger than every buffer on the way, back byte for byte, then the
        // server closes after our end of stream.
        let data = pattern(300_000, addr.len() as u8);
        let back = socat(&format!("TCP:{addr}:{TCP_PORT}"), &data);
        assert_eq!(back.len(), data.len(), "TCP echo length of {addr}");
        assert!(back == data, "TCP echo of {addr} differs");
    }

    // A burst to client 0 larger than every queue (512 Rx DMA buffers, 512 client buffers, 64
    // socket slots): frames may be dropped only where the system says it drops (the NIC ring and
    // Linux's TAP queue, the copier when the client has no free buffer, the stack's full socket);
    // every reply is one of our datagrams, intact, at most once, and the system serves on.
    let sock = UdpSocket::bind("10.0.2.1:0").unwrap();
    sock.connect((CLIENTS[0], UDP_PORT)).unwrap();
    // Replies are read while the burst goes out, into a large buffer, so that what is lost is
    // lost in the system, not in this socket.
    let big: libc::c_int = 16 << 20;
    // SAFETY: sets an int socket option on our socket from a live int.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const big).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let burst = 3000u32;
    let rx = sock.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = HashSet::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            assert_eq!(n, 1004, "reply length");
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert!(seq < burst, "reply to a datagram never sent");
            assert!(
                buf[4..n] == pattern(1000, seq as u8)[..],
                "reply {seq} corrupted"
            );
            assert!(seen.insert(seq), "reply {seq} twice");
        }
        seen
    });
    let mut sent = 0u32;
    for seq in 0..burst {
        let mut msg = seq.to_be_bytes().to_vec();
        msg.extend(pattern(1000, seq as u8));
        if sock.send(&msg).is_ok() {
            sent += 1;
        }
    }
    let seen = reader.join().unwrap();
    assert!(!seen.is_empty() && seen.len() as u32 <= sent);
    eprintln!("burst: {sent} sent, {} echoed", seen.len());
    // Still serving, both clients.
    // (UDP may lose a datagram by design, so a few tries: a client that stopped serving
    // answers none.)
    for addr in CLIENTS {
        let tries = (1..=5)
            .find(|_| {
                socat(&format!("UDP:{addr}:{UDP_PORT}"), b"after the burst\n")
                    == b"after the burst\n"
            })
            .unwrap_or_else(|| panic!("{addr} does not echo after the burst"));
        eprintln!("{addr} echoed after the burst at try {tries}");
    }

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

/// A port on 127.0.0.1 free for both TCP and UDP just now.
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

fn echo_server_over_the_user_mode_network_with_port_forwarding() {
    over_the_user_mode_network(&[]);
}

/// The paper's first broadcast scheme (`LIONS_BROADCAST=arp`): the ARP responder `net_arp` is the
/// only receiver of broadcasts, so the gateway's ARP requests for the clients reach no client, and
/// every echo below needs the responder's answer first.
fn echo_server_with_the_arp_responder_over_the_user_mode_network() {
    over_the_user_mode_network(&[("LIONS_BROADCAST", "arp")]);
}

/// The README's first contact, then UDP and TCP echo of both clients through forwarded ports,
/// the system built with `env` added.
fn over_the_user_mode_network(env: &[(&str, &str)]) {
    let _one = ONE_SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    let ports = [free_port(), free_port()];
    let forward = CLIENTS
        .iter()
        .zip(ports)
        .map(|(ip, p)| format!("tcp:{p}:{ip}:{TCP_PORT},udp:{p}:{ip}:{UDP_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut vars = vec![
        ("LIONS_NET", "user"),
        ("LIONS_NET_FORWARD", forward.as_str()),
    ];
    vars.extend_from_slice(env);
    let mut sys = System::start_with("echo_server", &[], &vars);
    sys.expect("both clients up", |s: &Screen| {
        let t = s.text();
        t.contains("client0: 10.0.2.10/24") && t.contains("client1: 10.0.2.11/24")
    });
    // The README's line, with socat's defaults, to each client in turn: the first contact.
    for (addr, port) in CLIENTS.iter().zip(ports) {
        let started = std::time::Instant::now();
        let out = run(
            Command::new("sh").args(["-c", &format!("echo hello | socat - TCP:127.0.0.1:{port}")]),
            "socat",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello\n",
            "the README's first TCP echo of {addr} through 127.0.0.1:{port} printed nothing \
             after {:?} (socat waits 0.5 s for the answer)",
            started.elapsed()
        );
    }
    for (addr, port) in CLIENTS.iter().zip(ports) {
        let line = format!("a datagram for {addr} through 127.0.0.1:{port}\n");
        let back = socat(&format!("UDP:127.0.0.1:{port}"), line.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&back),
            line,
            "forwarded UDP echo of {addr}"
        );
        let data = pattern(200_000, port as u8);
        let back = socat(&format!("TCP:127.0.0.1:{port}"), &data);
        assert_eq!(
            back.len(),
            data.len(),
            "forwarded TCP echo length of {addr}"
        );
        assert!(back == data, "forwarded TCP echo of {addr} differs");
    }
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

fn main() -> ExitCode {
    common::harness::run(vec![
        Trial {
            name: "echo_server_over_a_tap_in_a_namespace",
            run: echo_server_over_a_tap_in_a_namespace,
            not_run: tap_not_runnable(),
        },
        Trial {
            name: "echo_server_over_the_user_mode_network_with_port_forwarding",
            run: echo_server_over_the_user_mode_network_with_port_forwarding,
            not_run: missing_tools(&[("socat", "socat")]),
        },
        Trial {
            name: "echo_server_with_the_arp_responder_over_the_user_mode_network",
            run: echo_server_with_the_arp_responder_over_the_user_mode_network,
            not_run: missing_tools(&[("socat", "socat")]),
        },
    ])
}
