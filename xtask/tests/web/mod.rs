// SPDX-License-Identifier: BSD-2-Clause
//! What the webserver example's test and benchmark share: a generated site, its disk image, and
//! curl.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The web server's address and port inside the system.
pub const SERVER: (&str, u16) = ("10.0.2.10", 80);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Deterministic bytes for a file.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 251) as u8 ^ seed).wrapping_add((i >> 12) as u8))
        .collect()
}

/// Write a site of many sizes and types under `dir`; its files as (URL path, contents).
pub fn make_site(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "index.html",
            b"<!doctype html><title>root</title><p>hello</p>\n".to_vec(),
        ),
        ("empty.txt", Vec::new()),
        ("one.txt", b"1".to_vec()),
        ("style.css", b"body { color: black }\n".to_vec()),
        ("data/4k.bin", pattern(4096, 1)),
        ("data/4k-plus-1.bin", pattern(4097, 2)),
        ("data/100k.bin", pattern(100_000, 3)),
        ("data/1m.bin", pattern(1 << 20, 4)),
        ("data/odd size.bin", pattern(1_000_003, 5)),
        (
            "docs/index.html",
            b"<!doctype html><p>docs index</p>\n".to_vec(),
        ),
        ("docs/deep/er/note.json", b"{\"deep\": true}\n".to_vec()),
        ("img/logo.png", pattern(3000, 6)),
    ];
    for (p, d) in &files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    files
        .into_iter()
        .map(|(p, d)| (format!("/{}", p.replace(' ', "%20")), d))
        .collect()
}

/// A disk image at `img` holding `dir` (examples/webserver/make-disk.sh).
pub fn make_disk(dir: &Path, img: &Path) {
    let out = Command::new(root().join("examples/webserver/make-disk.sh"))
        .arg(img)
        .arg(dir)
        .output()
        .expect("make-disk.sh");
    assert!(
        out.status.success(),
        "make-disk.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run curl (silent, 20 s limit) with `args`; its output.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl (Debian package curl)")
}

/// A response split into its head (text) and body.
pub fn split(resp: &[u8]) -> (String, Vec<u8>) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    (
        String::from_utf8_lossy(&resp[..end]).into_owned(),
        resp[end..].to_vec(),
    )
}

/// The value of header `name` in a response head.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
