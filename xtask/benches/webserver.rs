// SPDX-License-Identifier: BSD-2-Clause
//! The webserver example against nginx, same machine, same run: `wrk` fetching one file over
//! and over on `LIONS_BENCH_CONNECTIONS` (default 16, the PD's maximum) keep-alive connections,
//! for a 4 KiB and a 1 MiB file; requests/s, MB/s and CPU time per request (the system's PDs,
//! or the nginx process), with our figures as ratios to nginx's.
//!
//! `cargo bench -p xtask --bench webserver` (root or CAP_NET_ADMIN: a network namespace and a
//! TAP; Debian packages `wrk nginx curl dosfstools mtools fdisk`). Without them it prints
//! `not run: <reason>` and exits 0. `LIONS_BENCH_SECS` (default 5) is each measurement's length.
//!
//! Topology: this thread's own network namespace, with the TAP `lions0` (10.0.2.1/24) in front
//! of the system (the web server at 10.0.2.10:80, FAT on a disk image made from the same tree)
//! and nginx (1 worker, `sendfile on`, an access log as our PD's console log) on 10.0.2.1:8080
//! serving that tree from the Linux file system. So wrk reaches nginx through the kernel's local
//! delivery and our server through the TAP and the system's PDs. The PDs run on the first CPU
//! this process may use (the example's default), nginx is pinned there too, and wrk runs on the
//! last CPU.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/web/mod.rs"]
mod web;

use common::harness::missing_tools;
use common::{Screen, System};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CPUs this process may use: (first, last).
fn cpus() -> (usize, usize) {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pid 0 is this thread.
    unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: CPU_ISSET reads the set.
    let on: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    (on[0], *on.last().unwrap())
}

/// User + system CPU seconds of `pids`.
fn cpu_secs(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split(' ').collect();
            (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / hz
        })
        .sum()
}

/// The processes whose executable lies under `dir`.
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
    rps: f64,
    mbps: f64,
    cpu_per_req_us: f64,
}

/// wrk on `url` for `secs` with `conns` connections, on CPU `cpu`; CPU time of `pids`.
fn wrk(url: &str, size: usize, secs: u64, conns: u64, cpu: usize, pids: &[u32]) -> Run {
    let before = cpu_secs(pids);
    let out = Command::new("taskset")
        .args([
            "-c",
            &cpu.to_string(),
            "wrk",
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            url,
        ])
        .output()
        .expect("wrk");
    let cpu_used = cpu_secs(pids) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("wrk printed no {name}:\n{text}"))
    };
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.parse::<f64>().ok())
        })
        .unwrap_or_else(|| panic!("wrk printed no request count:\n{text}"));
    assert!(!text.contains("Non-2xx"), "errors from {url}:\n{text}");
    if text.contains("Socket errors") {
        eprintln!(
            "webserver bench: {url}: {}",
            text.lines().find(|l| l.contains("Socket errors")).unwrap()
        );
    }
    let rps = field("Requests/sec:");
    Run {
        rps,
        mbps: rps * size as f64 / 1e6,
        cpu_per_req_us: cpu_used / requests.max(1.0) * 1e6,
    }
}

fn not_run() -> Option<String> {
    if let Some(why) = missing_tools(&[
        ("wrk", "wrk"),
        ("nginx", "nginx"),
        ("ip", "iproute2"),
        ("taskset", "util-linux"),
        ("mcopy", "mtools"),
    ]) {
        return Some(why);
    }
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } != 0).then(|| "needs root (a network namespace and a TAP)".into())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = not_run() {
        println!("webserver bench: not run: {why}");
        return;
    }
    let secs = env_or("LIONS_BENCH_SECS", 5);
    let conns = env_or("LIONS_BENCH_CONNECTIONS", 16);
    let (first, last) = cpus();
    let dir = std::env::temp_dir().join(format!("lions-web-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let site = dir.join("site");
    web::make_site(&site);
    let img = dir.join("disk.img");
    web::make_disk(&site, &img);
    // Build (release) where crates and PyPI are reachable.
    let conns_s = conns.to_string();
    let env = [
        ("LIONS_HOST_BLK_IMAGE", img.to_str().unwrap()),
        ("LIONS_WEB_CONNECTIONS", conns_s.as_str()),
        ("LIONS_NET", "tap"),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["build", "webserver", "--release"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SAFETY: unshare(CLONE_NEWNET) changes only this thread's network namespace.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
    ip(&["link", "set", "lo", "up"]);
    ip(&["tuntap", "add", "dev", "lions0", "mode", "tap"]);
    ip(&["addr", "add", "10.0.2.1/24", "dev", "lions0"]);
    ip(&["link", "set", "lions0", "up"]);

    // nginx on the same tree.
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log {d}/access.log; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n\
               types {{ application/octet-stream bin; text/html html; }}\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen 10.0.2.1:8080; root {s}; }} }}\n",
            d = dir.display(),
            s = site.display()
        ),
    )
    .unwrap();
    let mut nginx: Child = Command::new("taskset")
        .args([
            "-c",
            &first.to_string(),
            "nginx",
            "-c",
            conf.to_str().unwrap(),
            "-p",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx");
    std::thread::sleep(Duration::from_millis(500));
    let nginx_pids = vec![nginx.id()];

    let mut sys = System::start_with("webserver", &["--release"], &env);
    sys.expect("the web server up", |s: &Screen| {
        s.text().contains("webserver: serving http://10.0.2.10:80/")
    });
    let target = std::fs::canonicalize(web::root().join("target")).unwrap();
    let pids = pids_under(&format!("{}/lions/webserver/", target.display()));
    assert_eq!(pids.len(), 11, "the system's PD processes");

    println!(
        "webserver bench: wrk -t1 -c{conns} -d{secs}s, PDs and nginx on CPU {first}, wrk on CPU {last}"
    );
    println!(
        "{:<10} {:>6} {:>12} {:>10} {:>14}",
        "file", "server", "requests/s", "MB/s", "CPU us/request"
    );
    for (path, size) in [("/data/4k.bin", 4096usize), ("/data/1m.bin", 1 << 20)] {
        // Check both serve the same bytes first.
        let a = web::curl(&[&format!("http://10.0.2.10{path}")]).stdout;
        let b = web::curl(&[&format!("http://10.0.2.1:8080{path}")]).stdout;
        assert!(a.len() == size && a == b, "{path}: the two servers differ");
        let ng = wrk(
            &format!("http://10.0.2.1:8080{path}"),
            size,
            secs,
            conns,
            last,
            &nginx_pids,
        );
        let us = wrk(
            &format!("http://10.0.2.10{path}"),
            size,
            secs,
            conns,
            last,
            &pids,
        );
        for (name, r) in [("nginx", &ng), ("lions", &us)] {
            println!(
                "{path:<10} {name:>6} {:>12.0} {:>10.1} {:>14.1}",
                r.rps, r.mbps, r.cpu_per_req_us
            );
        }
        println!(
            "{path:<10} ratio lions/nginx: requests/s {:.2}x, MB/s {:.2}x, CPU per request {:.2}x",
            us.rps / ng.rps,
            us.mbps / ng.mbps,
            us.cpu_per_req_us / ng.cpu_per_req_us
        );
    }
    sys.ctrl_c();
    let _ = nginx.kill();
    let _ = nginx.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
