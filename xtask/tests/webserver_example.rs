// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run webserver` on the host board, driven from Linux with curl.
//!
//! Each test generates a site (files from 0 bytes to 1 MiB, nested directories, a name with a
//! space, directory indexes) and its FAT disk image (`examples/webserver/make-disk.sh`), runs the
//! system on it and checks, with curl and raw TCP:
//!
//! - every file byte-identical, with the right `Content-Length`, `Content-Type` and a
//!   `Last-Modified`; `index.html` for a directory; HEAD; keep-alive (many URLs on one curl
//!   connection);
//! - ranges (206, `Content-Range`, 416), `If-Modified-Since` (304);
//! - 404, 405, 400 for paths that would leave the root (`..`, `%2e%2e`, NUL), 414, malformed
//!   requests on raw TCP, and the server still serving after each;
//! - as many concurrent clients as the config's connections, each getting the 1 MiB file;
//! - a request log line on the console for a request.
//!
//! Two ways in: the user-mode network with a forwarded port on 127.0.0.1 (no privileges), and a
//! TAP in a network namespace the test makes (root or CAP_NET_ADMIN; otherwise reported as
//! **not run**). Runner: [`common::harness`].
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;
mod web;

use common::harness::{Trial, missing_tools};
use common::{Screen, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::Duration;
use web::{SERVER, curl, header, make_disk, make_site, split};

/// One system at a time: both tests build and run `webserver` in the same directory.
static ONE_SYSTEM: Mutex<()> = Mutex::new(());

/// Connections the system is configured for here.
const CONNECTIONS: usize = 8;

/// A fresh site and disk image in a temporary directory.
fn site(name: &str) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let dir = std::env::temp_dir().join(format!("lions-web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = make_site(&dir.join("site"));
    let img = dir.join("disk.img");
    make_disk(&dir.join("site"), &img);
    (img, files)
}

fn start(img: &Path, env: &[(&str, &str)]) -> System {
    let conns = CONNECTIONS.to_string();
    let mut env = env.to_vec();
    env.extend([
        ("LIONS_HOST_BLK_IMAGE", img.to_str().unwrap()),
        ("LIONS_WEB_CONNECTIONS", conns.as_str()),
    ]);
    let mut sys = System::start_with("webserver", &[], &env);
    sys.expect("the web server up", |s: &Screen| {
        s.text().contains("webserver: serving http://10.0.2.10:80/")
    });
    sys
}

/// A raw request on its own connection; what came back until the server closed it (or 10 s).
fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Every check of the module docs against the server at `base` (`http://host:port`, and the
/// same as `addr` for raw TCP).
///
/// `server_closes`: also the checks after which the server closes the connection first (400,
/// 414, malformed requests on raw TCP, `Connection: close`). The user-mode network cannot take
/// them yet: when the guest closes a forwarded connection first, `net_driver_host_user`'s
/// gateway at times spins and stops relaying (a driver bug, reported with this example); the
/// TAP test runs them.
fn check_site(
    sys: &mut System,
    base: &str,
    addr: &str,
    files: &[(String, Vec<u8>)],
    server_closes: bool,
) {
    // Every file, byte for byte, with its headers.
    for (path, data) in files {
        let out = curl(&["-i", &format!("{base}{path}")]);
        let (head, body) = split(&out.stdout);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert_eq!(body.len(), data.len(), "{path}: length");
        assert!(body == *data, "{path}: contents differ");
        assert_eq!(
            header(&head, "Content-Length"),
            Some(data.len().to_string().as_str())
        );
        let ext = path.rsplit('.').next().unwrap();
        let want = match ext {
            "html" => "text/html; charset=utf-8",
            "txt" => "text/plain; charset=utf-8",
            "css" => "text/css",
            "json" => "application/json",
            "png" => "image/png",
            _ => "application/octet-stream",
        };
        assert_eq!(header(&head, "Content-Type"), Some(want), "{path}");
        assert!(
            header(&head, "Last-Modified").is_some_and(|d| d.ends_with(" GMT")),
            "{head}"
        );
    }
    let find = |p: &str| &files.iter().find(|(q, _)| q == p).unwrap().1;
    // Directory indexes.
    for (url, file) in [
        ("/", "/index.html"),
        ("/docs", "/docs/index.html"),
        ("/docs/", "/docs/index.html"),
    ] {
        let out = curl(&[&format!("{base}{url}")]);
        assert!(out.stdout == *find(file), "{url} is {file}");
    }
    // Keep-alive: several URLs on one curl connection, and curl says it reused it.
    let urls: Vec<String> = ["/one.txt", "/data/4k.bin", "/style.css"]
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    let out = Command::new("curl")
        .args(["-sv", "--max-time", "20"])
        .args(&urls)
        .output()
        .unwrap();
    let mut want = find("/one.txt").clone();
    want.extend(find("/data/4k.bin"));
    want.extend(find("/style.css"));
    assert!(out.stdout == want, "three files on one connection");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Re-using existing connection"),
        "curl reused no connection:\n{log}"
    );
    // HEAD.
    let out = curl(&["-I", &format!("{base}/data/100k.bin")]);
    let (head, body) = split(&out.stdout);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && body.is_empty(),
        "{head}"
    );
    assert_eq!(header(&head, "Content-Length"), Some("100000"));
    // Ranges.
    let big = find("/data/100k.bin");
    for (spec, from, to) in [
        ("10-19", 10, 20),
        ("99990-", 99_990, 100_000),
        ("-7", 99_993, 100_000),
        ("0-999999", 0, 100_000),
    ] {
        let out = curl(&["-i", "-r", spec, &format!("{base}/data/100k.bin")]);
        let (head, body) = split(&out.stdout);
        assert!(
            head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{spec}: {head}"
        );
        assert_eq!(
            header(&head, "Content-Range"),
            Some(format!("bytes {from}-{}/100000", to - 1).as_str())
        );
        assert!(body == big[from..to], "range {spec}");
    }
    let out = curl(&["-i", "-r", "100000-", &format!("{base}/data/100k.bin")]);
    let (head, _) = split(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 416 "), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes */100000"));
    // If-Modified-Since: its own Last-Modified gives 304, an older date 200.
    let out = curl(&["-I", &format!("{base}/one.txt")]);
    let (head, _) = split(&out.stdout);
    let lm = header(&head, "Last-Modified").unwrap().to_string();
    let out = curl(&[
        "-i",
        "-H",
        &format!("If-Modified-Since: {lm}"),
        &format!("{base}/one.txt"),
    ]);
    assert!(
        split(&out.stdout)
            .0
            .starts_with("HTTP/1.1 304 Not Modified\r\n")
    );
    let out = curl(&[
        "-i",
        "-H",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
        &format!("{base}/one.txt"),
    ]);
    assert!(split(&out.stdout).0.starts_with("HTTP/1.1 200 OK\r\n"));
    // Errors, each followed by a good request.
    let code = |args: &[&str]| {
        String::from_utf8(curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat()).stdout)
            .unwrap()
    };
    assert_eq!(code(&[&format!("{base}/missing.html")]), "404");
    assert_eq!(code(&[&format!("{base}/docs/deep/none/")]), "404");
    assert_eq!(
        code(&["-X", "POST", "-d", "x=1", &format!("{base}/index.html")]),
        "405"
    );
    assert_eq!(
        code(&["-X", "DELETE", &format!("{base}/index.html")]),
        "405"
    );
    if !server_closes {
        return check_concurrent_and_log(sys, base, files);
    }
    assert_eq!(
        code(&["--path-as-is", &format!("{base}/../../etc/passwd")]),
        "400"
    );
    assert_eq!(
        code(&[
            "--path-as-is",
            &format!("{base}/docs/%2e%2e/%2E%2e/etc/passwd")
        ]),
        "400"
    );
    assert_eq!(code(&[&format!("{base}/index.html%00.txt")]), "400");
    assert_eq!(code(&[&format!("{base}/{}", "a".repeat(2000))]), "414");
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"\x00\xff\xfe\r\n\r\n",
    ] {
        let resp = raw(addr, bad);
        assert!(
            resp.starts_with("HTTP/1.1 400 ") || resp.starts_with("HTTP/1.1 505 "),
            "{bad:?} answered {resp:?}"
        );
        assert_eq!(
            code(&[&format!("{base}/one.txt")]),
            "200",
            "still serving after {bad:?}"
        );
    }
    // A pipelined pair on raw TCP, the second closing.
    let resp = raw(
        addr,
        b"GET /one.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{resp}");
    assert!(resp.ends_with("body { color: black }\n"), "{resp}");
    check_concurrent_and_log(sys, base, files);
}

/// Concurrent clients and the request log (the end of [`check_site`]).
fn check_concurrent_and_log(sys: &mut System, base: &str, files: &[(String, Vec<u8>)]) {
    let find = |p: &str| &files.iter().find(|(q, _)| q == p).unwrap().1;
    // Concurrent clients: as many as configured, each fetching the 1 MiB file three times on
    // one connection.
    let big = find("/data/1m.bin").clone();
    let url = format!("{base}/data/1m.bin");
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&[&url, &url, &url]).stdout)
        })
        .collect();
    for t in threads {
        let got = t.join().unwrap();
        assert_eq!(got.len(), 3 * big.len(), "a concurrent client's length");
        assert!(
            got.chunks(big.len()).all(|c| c == big),
            "a concurrent client's bytes"
        );
    }
    // The request log.
    sys.expect("request log lines", |s: &Screen| {
        let t = s.text();
        t.contains("GET /one.txt 200 1")
            && t.contains("GET /missing.html 404 ")
            && t.contains("HEAD /data/100k.bin 200 0")
    });
}

fn stop(mut sys: System) {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn webserver_over_the_user_mode_network() {
    let _one = ONE_SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    let (img, files) = site("user");
    let port = free_port();
    let forward = format!("tcp:{port}:{}:{}", SERVER.0, SERVER.1);
    let mut sys = start(
        &img,
        &[("LIONS_NET", "user"), ("LIONS_NET_FORWARD", &forward)],
    );
    let addr = format!("127.0.0.1:{port}");
    check_site(&mut sys, &format!("http://{addr}"), &addr, &files, false);
    stop(sys);
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn webserver_over_a_tap_in_a_namespace() {
    let _one = ONE_SYSTEM.lock().unwrap_or_else(|e| e.into_inner());
    let (img, files) = site("tap");
    // Build where crates and PyPI are reachable; the namespace has no route out.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["build", "webserver"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: unshare(CLONE_NEWNET) changes only this thread's network namespace.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
    ip(&["link", "set", "lo", "up"]);
    ip(&["tuntap", "add", "dev", "lions0", "mode", "tap"]);
    ip(&["addr", "add", "10.0.2.1/24", "dev", "lions0"]);
    ip(&["link", "set", "lions0", "up"]);
    let mut sys = start(&img, &[("LIONS_NET", "tap")]);
    let addr = format!("{}:{}", SERVER.0, SERVER.1);
    check_site(&mut sys, &format!("http://{addr}"), &addr, &files, true);
    stop(sys);
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
}

/// Why the TAP test cannot run here, if it cannot.
fn tap_not_runnable() -> Option<String> {
    if let Some(why) = missing_tools(&[
        ("ip", "iproute2"),
        ("curl", "curl"),
        ("mkfs.fat", "dosfstools"),
        ("mcopy", "mtools"),
        ("sfdisk", "fdisk"),
    ]) {
        return Some(why);
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun (the TAP driver)".into());
    }
    let probe = std::thread::spawn(|| {
        // SAFETY: unshare(CLONE_NEWNET) changes only this short-lived thread's namespace.
        (unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0).then(std::io::Error::last_os_error)
    });
    probe.join().unwrap().map(|e| {
        format!(
            "needs root or CAP_NET_ADMIN for a network namespace and a TAP (unshare: {e}); the \
             user-mode network test runs without it"
        )
    })
}

fn main() -> ExitCode {
    common::harness::run(vec![
        Trial {
            name: "webserver_over_the_user_mode_network",
            run: webserver_over_the_user_mode_network,
            not_run: missing_tools(&[
                ("curl", "curl"),
                ("mkfs.fat", "dosfstools"),
                ("mcopy", "mtools"),
                ("sfdisk", "fdisk"),
            ]),
        },
        Trial {
            name: "webserver_over_a_tap_in_a_namespace",
            run: webserver_over_a_tap_in_a_namespace,
            not_run: tap_not_runnable(),
        },
    ])
}
