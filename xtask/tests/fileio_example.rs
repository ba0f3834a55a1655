// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask run fileio`, end to end on a pty, then the disk image checked from outside with
//! Linux tools:
//!
//! 1. `examples/fileio/make-disk.sh` makes a fresh GPT image (two FAT partitions) in a temporary
//!    folder; `sfdisk --dump` gives the partitions' places, and partition 2's bytes are kept.
//! 2. The system runs with `LIONS_HOST_BLK_IMAGE` naming the image; the test waits for the
//!    client's `fileio: done` (or a `FAILED` line), checks every step's line was printed, types
//!    Ctrl-C and expects exit status 0 and no launcher report (no PD faulted or failed to start).
//! 3. The image: the partition table is unchanged; `fsck.fat -n` finds partition 1 clean (the
//!    client unmounted); mtools finds exactly the tree the client left, with the right bytes
//!    (`mtype` for the texts, `mcopy` for the 300 000-byte pattern file), none of the removed or
//!    renamed-away names; partition 2 (no PD is its client) is byte-identical to before.
//!
//! A missing tool (sfdisk, mkfs.fat, fsck.fat, mtools) fails the test with the Debian package to
//! install; nothing is skipped.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RUN_TIMEOUT, STOP_TIMEOUT, Screen, System};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian packages of the tools this test runs.
const TOOLS: [(&str, &str); 5] = [
    ("sfdisk", "fdisk"),
    ("fsck.fat", "dosfstools"),
    ("mtype", "mtools"),
    ("mcopy", "mtools"),
    ("mdir", "mtools"),
];

/// `name` on `PATH` or in `/usr/sbin`, `/sbin` (where Debian puts sfdisk and fsck.fat).
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            let pkg = TOOLS.iter().find(|t| t.0 == name).map_or("?", |t| t.1);
            panic!("`{name}` is needed and not installed (Debian: apt-get install {pkg})")
        })
}

fn run(cmd: &mut Command) -> Output {
    cmd.env("MTOOLS_SKIP_CHECK", "1")
        .env("MTOOLSRC", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A partition as `sfdisk --dump` lists it: (start, size) in bytes.
fn partitions(img: &Path) -> (String, Vec<(u64, u64)>) {
    let dump =
        String::from_utf8(run_ok(Command::new(tool("sfdisk")).arg("--dump").arg(img))).unwrap();
    let field = |line: &str, key: &str| -> u64 {
        let at = line.find(key).unwrap() + key.len();
        let v = line[at..].split(',').next().unwrap().trim();
        v.parse::<u64>().unwrap() * 512
    };
    let parts = dump
        .lines()
        .filter(|l| l.contains("start="))
        .map(|l| (field(l, "start="), field(l, "size=")))
        .collect();
    (dump, parts)
}

fn bytes_of(img: &Path, (start, len): (u64, u64)) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; usize::try_from(len).unwrap()];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut buf, start)
        .unwrap();
    buf
}

/// mtools' name of a partition: `IMAGE@@OFFSET`.
fn drive(img: &Path, (start, _): (u64, u64)) -> String {
    format!("{}@@{start}", img.display())
}

/// Byte `i` of the pattern file (examples/fileio/src/lib.rs, `pattern_byte`).
#[allow(clippy::cast_possible_truncation)] // Keeping the low byte is the point.
fn pattern_byte(i: u64) -> u8 {
    ((i % 251) ^ (i >> 12)) as u8
}

/// What the client prints, in this order (examples/fileio/README.md).
const STEPS: &[&str] = &[
    "fileio: mounted the FAT volume on partition 1",
    "fileio: read /hello.txt (62 bytes): Hello from mtools: make-disk.sh put this file on partition 1.",
    "fileio: made directory /logs",
    "fileio: made directory /logs/old",
    "fileio: made directory /data",
    "fileio: making /logs again is refused: AlreadyExists",
    "fileio: wrote /logs/today.txt (168 bytes)",
    "fileio: read /logs/today.txt back: 168 bytes, as written",
    "fileio: wrote /data/pattern.bin: 300000 bytes in 10 writes",
    "fileio: read /data/pattern.bin back in 10000-byte reads: every byte as written",
    "fileio: stat /data/pattern.bin: 300000 bytes, mode 100644",
    "fileio: renamed /logs/today.txt to /logs/old/yesterday.txt: old name gone, contents kept",
    "fileio: ls /logs",
    "fileio:   old/",
    "fileio: ls /logs/old",
    "fileio:   yesterday.txt (168 bytes)",
    "fileio: wrote and removed /scratch.txt",
    "fileio: made and removed directory /empty",
    "fileio: removing /logs is refused: NotEmpty",
    "fileio: ls /",
    "fileio:   hello.txt (62 bytes)",
    "fileio:   logs/",
    "fileio:   data/",
    "fileio: unmounted",
    "fileio: done in ",
];

const LOG_TEXT: &str = "09:00 mounted the FAT volume on partition 1\n\
09:01 made /logs and /logs/old\n\
09:02 wrote this file as /logs/today.txt\n\
09:03 it will be renamed to /logs/old/yesterday.txt\n";

#[test]
fn run_fileio_and_check_the_disk() {
    for (name, _) in TOOLS {
        tool(name);
    }
    let root = xtask::workspace_root();
    let dir = std::env::temp_dir().join(format!("lions-fileio-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");

    // 1. A fresh disk.
    run_ok(
        Command::new("bash")
            .arg(root.join("examples/fileio/make-disk.sh"))
            .arg(&img)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
    );
    let (table_before, parts) = partitions(&img);
    assert_eq!(parts.len(), 2, "two partitions:\n{table_before}");
    assert_eq!(parts[0], (1 << 20, 64 << 20), "{table_before}");
    let p2_before = bytes_of(&img, parts[1]);

    // 2. The system, until the client is done.
    let image = img.to_str().unwrap();
    let mut sys = System::start_with("fileio", &[], &[("LIONS_HOST_BLK_IMAGE", image)]);
    let finished = |s: &Screen| {
        let t = s.text();
        t.contains("fileio: done in ") || t.contains("FAILED")
    };
    if !sys.wait_for(RUN_TIMEOUT, finished) {
        let t = sys.stop();
        panic!("timed out ({RUN_TIMEOUT:?}) waiting for `fileio: done`:\n{t}");
    }
    let status = sys.ctrl_c();
    let transcript = sys.stop();
    let text = sys.with_screen(Screen::text);
    let errors = sys.with_screen(|s| s.errors.clone());
    assert!(!text.contains("FAILED"), "the client failed:\n{transcript}");
    let mut from = 0;
    for step in STEPS {
        match text[from..].find(step) {
            Some(i) => from += i + step.len(),
            None => panic!("missing (or out of order): {step:?}\n{transcript}"),
        }
    }
    assert!(
        !text.contains("removed what an earlier run left"),
        "a fresh image has nothing to clean up:\n{transcript}"
    );
    let status = status.unwrap_or_else(|| {
        panic!("the launcher did not end within {STOP_TIMEOUT:?} of Ctrl-C:\n{transcript}")
    });
    assert_eq!(status.code(), Some(0), "launcher status:\n{transcript}");
    let reports: Vec<&String> = errors
        .iter()
        .filter(|l| l.starts_with("lions-host:") || l.contains("cannot start"))
        .collect();
    assert!(reports.is_empty(), "launcher reports:\n{transcript}");

    // 3. The image from outside.
    let (table_after, parts_after) = partitions(&img);
    assert_eq!(
        table_after, table_before,
        "the partition table is unchanged"
    );
    assert_eq!(parts_after, parts);

    let p1_file = dir.join("p1.img");
    std::fs::write(&p1_file, bytes_of(&img, parts[0])).unwrap();
    let fsck = run(Command::new(tool("fsck.fat")).arg("-n").arg(&p1_file));
    let fsck_text = format!(
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    assert!(
        fsck.status.success() && !fsck_text.contains("Dirty"),
        "fsck.fat -n on partition 1: {}\n{fsck_text}",
        fsck.status
    );

    let p1 = drive(&img, parts[0]);
    let tree = String::from_utf8(run_ok(
        Command::new(tool("mdir")).args(["-b", "-/", "-i", &p1, "::/"]),
    ))
    .unwrap();
    let mut names: Vec<&str> = tree.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "::/data/",
            "::/data/pattern.bin",
            "::/hello.txt",
            "::/logs/",
            "::/logs/old/",
            "::/logs/old/yesterday.txt",
        ],
        "partition 1 holds exactly what the client left (today.txt renamed away, scratch.txt, \
         /empty and /bench.bin removed)"
    );
    let mtype = |path: &str| {
        String::from_utf8(run_ok(Command::new(tool("mtype")).args([
            "-i",
            &p1,
            &format!("::{path}"),
        ])))
        .unwrap()
    };
    assert_eq!(
        mtype("/hello.txt"),
        "Hello from mtools: make-disk.sh put this file on partition 1.\n"
    );
    assert_eq!(mtype("/logs/old/yesterday.txt"), LOG_TEXT);
    for gone in ["/logs/today.txt", "/scratch.txt", "/empty"] {
        let out = run(Command::new(tool("mdir")).args(["-b", "-i", &p1, &format!("::{gone}")]));
        assert!(!out.status.success(), "{gone} still exists");
    }
    let copy = dir.join("pattern.bin");
    run_ok(
        Command::new(tool("mcopy"))
            .args(["-n", "-i", &p1, "::/data/pattern.bin"])
            .arg(&copy),
    );
    let pattern = std::fs::read(&copy).unwrap();
    assert_eq!(pattern.len(), 300_000);
    let bad = (0u64..).zip(&pattern).find(|&(i, &b)| b != pattern_byte(i));
    assert_eq!(
        bad, None,
        "first byte of /data/pattern.bin that is not the pattern"
    );

    let p2_after = bytes_of(&img, parts[1]);
    assert!(
        p2_after == p2_before,
        "partition 2 changed (first difference at byte {:?})",
        p2_after.iter().zip(&p2_before).position(|(a, b)| a != b)
    );
    let p2 = drive(&img, parts[1]);
    let numbers = String::from_utf8(run_ok(Command::new(tool("mtype")).args([
        "-i",
        &p2,
        "::/numbers/1-20000.txt",
    ])))
    .unwrap();
    assert_eq!(
        numbers.lines().count(),
        20_000,
        "partition 2 still reads as made"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}
