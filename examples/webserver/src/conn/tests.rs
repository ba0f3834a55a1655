// SPDX-License-Identifier: BSD-2-Clause
//! Connection tests over an in-memory file source.
#![allow(clippy::cast_possible_truncation)]

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Files in memory; directories are the prefixes of file paths.
#[derive(Default)]
struct Mem {
    files: BTreeMap<String, Vec<u8>>,
    open: BTreeMap<u64, String>,
    next_fd: u64,
    fail_reads: bool,
}

impl Mem {
    fn with(files: &[(&str, &[u8])]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(p, d)| ((*p).into(), d.to_vec()))
                .collect(),
            ..Self::default()
        }
    }
}

impl FileSource for Mem {
    fn stat(&mut self, path: &str) -> Result<Kind, SourceError> {
        if let Some(d) = self.files.get(path) {
            return Ok(Kind::File(Meta {
                size: d.len() as u64,
                mtime: 1_000_000,
            }));
        }
        let dir = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        Ok(if self.files.keys().any(|k| k.starts_with(&dir)) {
            Kind::Dir
        } else {
            Kind::Missing
        })
    }
    fn open(&mut self, path: &str) -> Result<u64, SourceError> {
        self.files.get(path).ok_or(SourceError)?;
        self.next_fd += 1;
        self.open.insert(self.next_fd, path.into());
        Ok(self.next_fd)
    }
    fn read(&mut self, fd: u64, offset: u64, out: &mut [u8]) -> Result<usize, SourceError> {
        if self.fail_reads {
            return Err(SourceError);
        }
        let d = &self.files[&self.open[&fd]];
        let from = (offset as usize).min(d.len());
        let n = out.len().min(d.len() - from);
        out[..n].copy_from_slice(&d[from..from + n]);
        Ok(n)
    }
    fn close(&mut self, fd: u64) {
        assert!(
            self.open.remove(&fd).is_some(),
            "closed twice or never opened"
        );
    }
}

/// Feed `input` (in pieces of `piece` bytes), drain with a send buffer of `window` bytes; the
/// output and the log lines.
fn run(
    conn: &mut Conn,
    files: &mut Mem,
    input: &[u8],
    piece: usize,
    window: usize,
) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::new();
    let mut log = Vec::new();
    let mut rest = input;
    let mut buf = vec![0u8; window];
    for _ in 0..100_000 {
        let room = conn.receive_buffer();
        let k = rest.len().min(piece).min(room.len());
        room[..k].copy_from_slice(&rest[..k]);
        conn.received(k);
        rest = &rest[k..];
        let n = conn.produce(&mut buf, files, &mut |e: &LogEntry<'_>| {
            log.push(format!(
                "{:?} {} {} {}",
                e.method, e.path, e.status, e.bytes
            ));
        });
        out.extend_from_slice(&buf[..n]);
        if conn.done() || (rest.is_empty() && n == 0 && k == 0) {
            break;
        }
    }
    (out, log)
}

fn body_of(resp: &[u8]) -> (&str, &[u8]) {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (std::str::from_utf8(&resp[..end]).unwrap(), &resp[end..])
}

#[test]
fn serves_files_index_and_errors_keeping_the_connection() {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut files = Mem::with(&[
        ("/index.html", b"<h1>hi</h1>"),
        ("/d/big.bin", &big),
        ("/d/sub/index.html", b"sub"),
    ]);
    let mut c = Conn::new();
    let (out, log) = run(
        &mut c,
        &mut files,
        b"GET /d/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        7,
        1000,
    );
    let (head, body) = body_of(&out);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 100000\r\n"));
    assert!(head.contains("Content-Type: application/octet-stream\r\n"));
    assert_eq!(body, &big[..]);
    assert_eq!(log, ["Some(Get) /d/big.bin 200 100000"]);
    assert!(!c.done() && c.idle(), "keep-alive");
    assert!(files.open.is_empty(), "the file is closed after the body");
    // Pipelined: directory index, a 404, a 405, a range, then a close.
    let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /d/sub/ HTTP/1.1\r\nHost: x\r\n\r\n\
GET /nope HTTP/1.1\r\nHost: x\r\n\r\nPUT / HTTP/1.1\r\nHost: x\r\n\r\n\
GET /d/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n\
HEAD /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n";
    let (out, log) = run(&mut c, &mut files, input, 1000, 64);
    assert_eq!(
        log,
        [
            "Some(Get) /index.html 200 11",
            "Some(Get) /d/sub/index.html 200 3",
            "Some(Get) /nope 404 14",
            "None  405 23",
            "Some(Get) /d/big.bin 206 10",
            "Some(Head) /index.html 200 0",
        ]
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("<h1>hi</h1>HTTP/1.1 200 OK"));
    assert!(text.contains("Content-Range: bytes 10-19/100000\r\n"));
    assert!(
        out.ends_with(b"Connection: close\r\n\r\n"),
        "HEAD has no body"
    );
    assert!(
        c.done(),
        "Connection: close ends it; the request after it is ignored"
    );
    assert!(files.open.is_empty());
}

#[test]
fn bad_requests_close_and_failures_are_500() {
    let mut files = Mem::with(&[("/a", b"abc")]);
    let mut c = Conn::new();
    let (out, log) = run(
        &mut c,
        &mut files,
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        100,
        100,
    );
    assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(log, ["None  400 16"]);
    assert!(c.done());
    c.reset(&mut files);
    files.fail_reads = true;
    let (out, log) = run(
        &mut c,
        &mut files,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        100,
        100,
    );
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(log, ["Some(Get) /a 200 0"]);
    assert!(c.done(), "a body that cannot be read ends the connection");
    assert!(files.open.is_empty());
    // A head too long for the buffer.
    c.reset(&mut files);
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
    let (out, _) = run(&mut c, &mut files, long.as_bytes(), 500, 100);
    assert!(
        out.starts_with(b"HTTP/1.1 414 URI Too Long\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(c.done());
}

#[test]
fn reset_closes_an_open_file() {
    let mut files = Mem::with(&[("/a", &[7u8; 5000])]);
    let mut c = Conn::new();
    c.receive_buffer()[..28].copy_from_slice(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    c.received(28);
    let n = c.produce(&mut [0u8; 300], &mut files, &mut |_: &LogEntry<'_>| {});
    assert_eq!(n, 300);
    assert_eq!(files.open.len(), 1);
    c.reset(&mut files);
    assert!(files.open.is_empty() && c.idle());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, fed in any pieces with any send window: no panic, no leaked descriptor once
    /// the connection is reset, and output only ever made of whole responses' prefixes.
    #[test]
    fn any_input_is_answered_without_panic(
        input in proptest::collection::vec(any::<u8>(), 0..2000),
        piece in 1usize..300,
        window in 1usize..700,
    ) {
        let mut files = Mem::with(&[("/index.html", b"x"), ("/a/b", &[1u8; 3000])]);
        let mut c = Conn::new();
        let (out, _) = run(&mut c, &mut files, &input, piece, window);
        if !out.is_empty() {
            prop_assert!(out.starts_with(b"HTTP/1.1 "));
        }
        c.reset(&mut files);
        prop_assert!(files.open.is_empty());
    }
}
