// SPDX-License-Identifier: BSD-2-Clause
//! A seeded attack on the FAT backend of the FS server with arbitrary disk images (a disk is
//! input: whoever wrote it, or the block layer below, may be compromised). The
//! `lions_os::sim::attack` engine corrupts a populated FAT image (bytes and fields of the boot
//! sector, the FATs, directory entries' first cluster and size), then the backend mounts it and
//! does everything a client can ask: walk the tree, stat, open and read every file, create, write,
//! rename and remove.
//!
//! Checked: nothing panics (a panic here is the FS server faulting) and every operation returns
//! within a bound (a hang is reported as a failure); errors are fine. Protocol attacks on the
//! server itself (bad commands, share offsets, fds) are in `protocol.rs`.
//!
//! Before the patched lamfat the full mix found issue 12 defect 3 (lamfat 0.4.3 subtracted 2 from
//! a directory entry's first cluster of 0 or 1); its minimised reproducer stays pinned in
//! `fs_fat_defect_cluster_below_2`. `fs_fat_boot_sector` corrupts the boot sector only.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::formatted_disk;
use lions_fs::fat::{FatFs, RamDisk};
use lions_fs::{AccessMode, FsBackend, OpenFlags, OpenOptions};
use lions_os::sim::attack::{Rng, Target};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

const RW_CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};
const RO: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);
/// Bytes at the start of the image that hold the metadata of the base image (boot sector, FATs,
/// root directory, the first directory clusters).
const HOT: usize = 64 * 1024;

/// A 1 MiB FAT image with directories, short and long names, and files of several clusters.
fn base() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let disk = formatted_disk(1);
        let mut fat = FatFs::new(disk.clone());
        fat.mount().unwrap();
        fat.dir_create("a").unwrap();
        fat.dir_create("a/b").unwrap();
        for (path, len) in [
            ("root.txt", 100),
            ("a/f1", 3000),
            ("a/b/a long file name.dat", 9000),
        ] {
            let f = fat.open(path, RW_CREATE).unwrap();
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(fat.write(f, 0, &bytes).unwrap(), len);
            fat.close(f).unwrap();
        }
        fat.unmount().unwrap();
        disk.image()
    })
}

#[derive(Debug, Clone)]
enum Corrupt {
    Byte(usize, u8),
    U16(usize, u16),
    U32(usize, u32),
    /// The directory entry at `at` (32-byte aligned): first cluster, or size.
    Cluster(usize, u16),
    Size(usize, u32),
}

fn apply(img: &mut [u8], c: &Corrupt) {
    match *c {
        Corrupt::Byte(at, v) => img[at] = v,
        Corrupt::U16(at, v) => img[at..at + 2].copy_from_slice(&v.to_le_bytes()),
        Corrupt::U32(at, v) => img[at..at + 4].copy_from_slice(&v.to_le_bytes()),
        Corrupt::Cluster(at, v) => img[at + 26..at + 28].copy_from_slice(&v.to_le_bytes()),
        Corrupt::Size(at, v) => img[at + 28..at + 32].copy_from_slice(&v.to_le_bytes()),
    }
}

/// Directory entries of the base image (offsets of 32-byte slots whose first byte is a name).
fn entries() -> &'static [usize] {
    static E: OnceLock<Vec<usize>> = OnceLock::new();
    E.get_or_init(|| {
        let img = base();
        (0..HOT / 32)
            .map(|i| i * 32)
            .filter(|&at| {
                let e = &img[at..at + 32];
                e[0].is_ascii_uppercase()
                    && e[11] & 0x0f != 0x0f
                    && e[11] & 0xc0 == 0
                    && (e[11] == 0x10 || e[11] == 0x20)
            })
            .collect()
    })
}

fn gen_corrupt(r: &mut Rng, boot_only: bool) -> Corrupt {
    let span = if boot_only { 64 } else { HOT - 4 };
    let at = r.index(span);
    let e = entries();
    match r.below(if boot_only { 3 } else { 5 }) {
        0 => Corrupt::Byte(at, r.u32() as u8),
        1 => Corrupt::U16(at & !1, r.nasty() as u16),
        2 => Corrupt::U32(at & !3, r.nasty() as u32),
        3 => Corrupt::Cluster(
            e[r.index(e.len())],
            r.pick(&[0, 1, 2, 0xfff, 0xffff, 0xff7]),
        ),
        _ => Corrupt::Size(e[r.index(e.len())], r.nasty() as u32),
    }
}

/// Walk and use everything; errors are fine, panics and hangs are not.
fn exercise(img: Vec<u8>) {
    let mut fat = FatFs::new(RamDisk::from_image(img, 512));
    if fat.mount().is_err() {
        return;
    }
    let mut todo = vec![String::new()];
    let mut seen = 0;
    while let Some(dir) = todo.pop() {
        let Ok(d) = fat.dir_open(if dir.is_empty() { "/" } else { &dir }) else {
            continue;
        };
        let mut buf = [0u8; 765];
        for _ in 0..64 {
            let Ok(n) = fat.dir_read(d, &mut buf) else {
                break;
            };
            seen += 1;
            let Ok(name) = std::str::from_utf8(&buf[..n]) else {
                continue;
            };
            if name == "." || name == ".." || name.is_empty() {
                continue;
            }
            let path = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            let Ok(st) = fat.stat(&path) else { continue };
            if st.mode & 0o040_000 != 0 {
                if path.matches('/').count() < 4 && seen < 256 {
                    todo.push(path);
                }
            } else if let Ok(f) = fat.open(&path, RO) {
                let _ = fat.size(f);
                let mut chunk = [0u8; 4096];
                for k in 0..4 {
                    if !matches!(fat.read(f, k * 4096, &mut chunk), Ok(4096)) {
                        break;
                    }
                }
                let _ = fat.close(f);
            }
        }
        let _ = fat.dir_close(d);
    }
    if let Ok(f) = fat.open("a/new.txt", RW_CREATE) {
        let _ = fat.write(f, 0, &[7u8; 5000]);
        let _ = fat.truncate(f, 100);
        let _ = fat.sync(f);
        let _ = fat.close(f);
    }
    let _ = fat.dir_create("a/c");
    let _ = fat.rename("root.txt", "a/c/moved.txt");
    let _ = fat.remove("a/f1");
    let _ = fat.dir_remove("a/b");
    let _ = fat.unmount();
}

fn execute(acts: &[Corrupt]) -> Result<(), String> {
    let mut img = base().to_vec();
    for c in acts {
        apply(&mut img, c);
    }
    // A thread per case, so that a hang is a failure rather than a stuck test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(move || exercise(img));
        let _ = tx.send(r.map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into())
        }));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(p)) => Err(format!("the FAT backend panicked: {p}")),
        Err(_) => Err("the FAT backend hangs (no answer in 10 s)".into()),
    }
}

fn generate(r: &mut Rng, boot_only: bool) -> Vec<Corrupt> {
    (0..1 + r.below(6))
        .map(|_| gen_corrupt(r, boot_only))
        .collect()
}

#[test]
fn fs_fat() {
    let t = Target {
        name: "fs_fat",
        package: "lions-fs",
        default_cases: 200,
    }
    .run(|r| generate(r, false), execute);
    assert!(t.actions > 0);
}

#[test]
fn fs_fat_boot_sector() {
    let t = Target {
        name: "fs_fat_boot_sector",
        package: "lions-fs",
        default_cases: 200,
    }
    .run(|r| generate(r, true), execute);
    assert!(t.actions > 0);
}

/// Issue 12 defect 3, minimised by the attacker (seed 0x64912b1e5e904edc): one directory entry
/// of the base image with first cluster 1; walking the tree makes lamfat 0.4.3 compute
/// `cluster - 2` (`fs.rs:471`), an overflow panic in debug builds (a wrong sector in release).
#[test]
fn fs_fat_defect_cluster_below_2() {
    assert!(
        entries().contains(&23136),
        "the base image's layout changed"
    );
    assert_eq!(execute(&[Corrupt::Cluster(23136, 1)]), Ok(()));
}
