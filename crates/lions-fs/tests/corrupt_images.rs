// SPDX-License-Identifier: BSD-2-Clause
//! A disk is input (issue 12, defect 3): the FAT server answers every command on a corrupt
//! image with a status and never panics or hangs. Crafted corruptions (a directory entry whose
//! first cluster is 1 or past the end, FAT chains that point at reserved or absent clusters, a
//! directory whose chain loops), then a seeded fuzz of random byte corruption of a small valid
//! image; each image gets every FS operation through the server, over the wire protocol.
//!
//! `catch_unwind` here only *detects* a panic (to name the seed that caused it); the server
//! itself must not panic.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{Conn, Wire};
use lions_fs::fat::{FatFs, RamDisk};
use lions_fs::queue::{Command, CommandType, CompletionData};
use lions_fs::{AccessMode, FsBackend, FsBuffer, OpenFlags, OpenOptions, Status};
use std::sync::mpsc;
use std::time::Duration;

const SECTOR: usize = 512;

/// A FAT image of `mib` MiB of `fat` type with `/file.txt` (10 000 bytes), `/dir/inner.txt`
/// (3000 bytes) and `/dir/sub/`.
fn valid_image(mib: u64, fat: lamfat::FatType) -> Vec<u8> {
    let disk = RamDisk::new(SECTOR, mib * 2048);
    lions_fs::fat::format_with(
        disk.clone(),
        lamfat::FormatVolumeOptions::new()
            .fat_type(fat)
            .bytes_per_cluster(cluster_bytes(fat)),
    )
    .unwrap();
    let mut fs = FatFs::new(disk.clone());
    fs.mount().unwrap();
    let rw = OpenFlags {
        access: AccessMode::ReadWrite,
        options: OpenOptions::CREATE,
    };
    for (path, len) in [("/file.txt", 10_000), ("/dir/inner.txt", 3000)] {
        if path.starts_with("/dir/") && fs.stat("/dir").is_err() {
            fs.dir_create("/dir").unwrap();
            fs.dir_create("/dir/sub").unwrap();
        }
        let h = fs.open(path, rw).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(fs.write(h, 0, &data).unwrap(), len);
        fs.close(h).unwrap();
    }
    fs.unmount().unwrap();
    disk.image()
}

/// Cluster size of the test images: FAT32 needs at least 65 525 clusters.
fn cluster_bytes(fat: lamfat::FatType) -> u32 {
    if fat == lamfat::FatType::Fat32 {
        512
    } else {
        1024
    }
}

/// Geometry from the boot sector: (bytes of one FAT entry ×2 (FAT12: 3), first FAT byte,
/// bytes per FAT).
fn fat_region(img: &[u8], fat: lamfat::FatType) -> (usize, usize) {
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([img[o], img[o + 1]]));
    let reserved = u16_at(14);
    let per_fat = match u16_at(22) {
        0 => u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize,
        n => n,
    };
    let _ = fat;
    (reserved * SECTOR, per_fat * SECTOR)
}

/// Set FAT entry `cluster` to `value` in every FAT copy (FAT16 and FAT32 only).
fn set_fat(img: &mut [u8], fat: lamfat::FatType, cluster: u32, value: u32) {
    let (start, len) = fat_region(img, fat);
    let copies = usize::from(img[16]);
    for k in 0..copies {
        let base = start + k * len;
        match fat {
            lamfat::FatType::Fat16 => {
                let at = base + cluster as usize * 2;
                img[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes());
            }
            _ => {
                let at = base + cluster as usize * 4;
                img[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
}

/// Offset of the directory entry with the 11-byte short name `name`.
fn entry(img: &[u8], name: &[u8; 11]) -> usize {
    img.chunks_exact(32)
        .position(|e| &e[..11] == name)
        .map(|i| i * 32)
        .unwrap_or_else(|| panic!("no entry {}", String::from_utf8_lossy(name)))
}

fn first_cluster(img: &[u8], at: usize) -> u32 {
    let lo = u32::from(u16::from_le_bytes([img[at + 26], img[at + 27]]));
    let hi = u32::from(u16::from_le_bytes([img[at + 20], img[at + 21]]));
    hi << 16 | lo
}

fn set_first_cluster(img: &mut [u8], at: usize, cluster: u32) {
    img[at + 26..at + 28].copy_from_slice(&(cluster as u16).to_le_bytes());
    img[at + 20..at + 22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
}

/// What the client saw: every command's status, in order.
type Transcript = Vec<(CommandType, Status)>;

/// Every FS operation on `img` through the server: mount, stat, open, read, write, size,
/// truncate, sync, directory listing and positions, rename, remove, mkdir, rmdir, a new file
/// that allocates, unmount. Statuses are whatever the server answers; a panic propagates.
fn exercise(img: Vec<u8>) -> Transcript {
    let disk = RamDisk::from_image(img, SECTOR);
    let conn = Conn::new(1 << 16);
    let mut server = conn.server(FatFs::new(disk));
    let mut wire = Wire::new(&conn);
    let mut log = Transcript::new();
    let mut call = |wire: &mut Wire<'_>, c: Command| -> (Status, u64) {
        let t = c.command_type();
        wire.send(c);
        assert_eq!(server.process(), 1, "{t:?}: one completion");
        let done = wire.completions();
        let s = done[0].status().unwrap();
        let v = match done[0].data(t) {
            CompletionData::Fd(v)
            | CompletionData::LenRead(v)
            | CompletionData::LenWritten(v)
            | CompletionData::Size(v)
            | CompletionData::PathLen(v)
            | CompletionData::Location(v) => v,
            _ => 0,
        };
        log.push((t, s));
        (s, v)
    };
    let path = |wire: &Wire<'_>, at: u64, p: &str| wire.put(at, p.as_bytes());
    let data = FsBuffer {
        offset: 0x8000,
        size: 0x4000,
    };
    let rw = OpenFlags {
        access: AccessMode::ReadWrite,
        options: OpenOptions::CREATE,
    };
    call(&mut wire, Command::Initialise);
    let files = [
        "/file.txt",
        "/dir/inner.txt",
        "/dir/sub/x",
        "/new.bin",
        "/dir/new2.txt",
    ];
    for f in files {
        let p = path(&wire, 0, f);
        call(
            &mut wire,
            Command::Stat {
                path: p,
                buf: FsBuffer {
                    offset: 0x1000,
                    size: 0x100,
                },
            },
        );
        let (s, fd) = call(&mut wire, Command::FileOpen { path: p, flags: rw });
        if s != Status::Success {
            continue;
        }
        for offset in [0, 5000, 9000] {
            call(
                &mut wire,
                Command::FileRead {
                    fd,
                    offset,
                    buf: data,
                },
            );
        }
        call(&mut wire, Command::FileSize { fd });
        call(
            &mut wire,
            Command::FileWrite {
                fd,
                offset: 2000,
                buf: data,
            },
        );
        call(
            &mut wire,
            Command::FileWrite {
                fd,
                offset: 40_000,
                buf: data,
            },
        );
        call(&mut wire, Command::FileSync { fd });
        call(&mut wire, Command::FileTruncate { fd, length: 1500 });
        call(
            &mut wire,
            Command::FileRead {
                fd,
                offset: 0,
                buf: data,
            },
        );
        call(&mut wire, Command::FileClose { fd });
    }
    for d in ["/", "/dir", "/dir/sub"] {
        let p = path(&wire, 0, d);
        let (s, fd) = call(&mut wire, Command::DirOpen { path: p });
        if s != Status::Success {
            continue;
        }
        let name = FsBuffer {
            offset: 0x1000,
            size: 0x400,
        };
        for _ in 0..40 {
            let (s, _) = call(&mut wire, Command::DirRead { fd, buf: name });
            if s != Status::Success {
                break;
            }
        }
        call(&mut wire, Command::DirTell { fd });
        call(&mut wire, Command::DirSeek { fd, loc: 3 });
        call(&mut wire, Command::DirRewind { fd });
        call(&mut wire, Command::DirClose { fd });
    }
    let (old, new) = (
        path(&wire, 0, "/file.txt"),
        path(&wire, 0x100, "/dir/moved.txt"),
    );
    call(
        &mut wire,
        Command::Rename {
            old_path: old,
            new_path: new,
        },
    );
    for f in ["/dir/moved.txt", "/file.txt", "/dir/inner.txt", "/new.bin"] {
        let p = path(&wire, 0, f);
        call(&mut wire, Command::FileRemove { path: p });
    }
    for d in ["/made", "/dir/sub/deeper"] {
        let p = path(&wire, 0, d);
        call(&mut wire, Command::DirCreate { path: p });
    }
    for d in ["/dir/sub", "/dir", "/made"] {
        let p = path(&wire, 0, d);
        call(&mut wire, Command::DirRemove { path: p });
    }
    call(&mut wire, Command::Deinitialise);
    log
}

/// [`exercise`] on a thread, failing the test if it does not finish in time (a loop in the
/// FAT library on a looping chain).
fn exercise_in_time(img: Vec<u8>, what: &str) -> Transcript {
    let (tx, rx) = mpsc::channel();
    let what_owned = what.to_string();
    std::thread::spawn(move || {
        let _ = &what_owned;
        let _ = tx.send(exercise(img));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(t) => t,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: the server hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the server panicked"),
    }
}

fn status_of(t: &Transcript, c: CommandType) -> Vec<Status> {
    t.iter().filter(|(k, _)| *k == c).map(|&(_, s)| s).collect()
}

#[test]
fn a_valid_image_serves_everything() {
    for fat in [lamfat::FatType::Fat16, lamfat::FatType::Fat32] {
        let mib = if fat == lamfat::FatType::Fat32 { 40 } else { 8 };
        let t = exercise_in_time(valid_image(mib, fat), "valid");
        assert_eq!(t[0], (CommandType::Initialise, Status::Success));
        assert_eq!(
            t.last(),
            Some(&(CommandType::Deinitialise, Status::Success))
        );
        assert!(
            status_of(&t, CommandType::FileRead)
                .iter()
                .all(|&s| s == Status::Success),
            "{fat:?}: {t:?}"
        );
        assert_eq!(
            status_of(&t, CommandType::FileRemove),
            [
                Status::Success,
                Status::NoFile,
                Status::Success,
                Status::Success
            ]
        );
    }
}

/// The corruption the issue names: a directory entry's first cluster of 1 (lamfat 0.4.3
/// subtracts 2 from it), for a file and for a directory, on FAT16 and FAT32; also first
/// clusters past the end (FAT32: with the high word set, so `cluster * 4` overflows u32).
#[test]
fn bad_first_clusters_are_errors() {
    for fat in [lamfat::FatType::Fat16, lamfat::FatType::Fat32] {
        let mib = if fat == lamfat::FatType::Fat32 { 40 } else { 8 };
        let img = valid_image(mib, fat);
        for (name, cluster) in [
            (b"FILE    TXT", 1u32),
            (b"DIR        ", 1),
            (b"INNER   TXT", 1),
            (b"FILE    TXT", 0xFFF0),
            (b"DIR        ", 0xFFF0),
            (b"FILE    TXT", 0x0FFF_FFF0),
            (b"DIR        ", 0xFFFF_FFF0),
            (b"FILE    TXT", 0xFFFF_FFFF),
        ] {
            // FAT16 entries hold 16 bits; on the FAT32 image (81 000 clusters) 0xFFF0 is valid.
            let fat32 = fat == lamfat::FatType::Fat32;
            if (!fat32 && cluster > 0xFFFF) || (fat32 && cluster == 0xFFF0) {
                continue;
            }
            let mut bad = img.clone();
            let at = entry(&bad, name);
            set_first_cluster(&mut bad, at, cluster);
            let what = format!(
                "{fat:?} {} first cluster {cluster:#x}",
                String::from_utf8_lossy(name)
            );
            let t = exercise_in_time(bad, &what);
            assert_eq!(t[0], (CommandType::Initialise, Status::Success), "{what}");
            // What lives in the bad object fails with a status; the server keeps serving.
            assert!(
                t.iter().any(|&(_, s)| s == Status::Error),
                "{what}: no command failed: {t:?}"
            );
            assert_eq!(
                t.last(),
                Some(&(CommandType::Deinitialise, Status::Success)),
                "{what}"
            );
        }
    }
}

/// FAT chains that lead to a reserved cluster (0 is free, 1 is reserved: both end nowhere), to
/// a cluster past the end, or around in a loop (a file's, and a directory's whose clusters hold
/// no end marker, so only the loop can end its listing).
#[test]
fn bad_chains_are_errors() {
    for fat in [lamfat::FatType::Fat16, lamfat::FatType::Fat32] {
        let mib = if fat == lamfat::FatType::Fat32 { 40 } else { 8 };
        let img = valid_image(mib, fat);
        let file = first_cluster(&img, entry(&img, b"FILE    TXT"));
        let dir = first_cluster(&img, entry(&img, b"DIR        "));
        let huge = if fat == lamfat::FatType::Fat16 {
            0xFFF0
        } else {
            0x0FFF_FFF0
        };
        for (what, c, v) in [
            ("file chain -> 1", file, 1),
            ("file chain -> past the end", file + 1, huge),
            ("file chain loops", file + 2, file),
            ("file chain loops on itself", file, file),
            ("dir chain -> 1", dir, 1),
            ("dir chain loops", dir, dir),
        ] {
            let mut bad = img.clone();
            set_fat(&mut bad, fat, c, v);
            if what.starts_with("dir chain loops") {
                // Fill the directory's cluster with deleted entries after its own, so no end
                // marker stops a listing.
                let at = entry(&bad, b"INNER   TXT");
                let cb = cluster_bytes(fat) as usize;
                let cluster_start = at - at % cb;
                for e in (cluster_start..cluster_start + cb).step_by(32) {
                    if bad[e] == 0 {
                        bad[e] = 0xE5;
                        bad[e + 11] = 0x20;
                    }
                }
            }
            let what = format!("{fat:?} {what}");
            let t = exercise_in_time(bad, &what);
            assert_eq!(
                t.last(),
                Some(&(CommandType::Deinitialise, Status::Success)),
                "{what}"
            );
        }
    }
}

/// xorshift64.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Seeded random corruption of a small valid image (bytes anywhere in the metadata area, most
/// of them in the boot sector, FATs and directories), then every operation through the server:
/// no panic and no hang for any seed. `LIONS_FS_FUZZ_CASES` runs more cases (default 300).
#[test]
fn random_corruption_never_panics_the_server() {
    let cases: u64 = std::env::var("LIONS_FS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let base = valid_image(8, lamfat::FatType::Fat16);
    // FAT16 layout from the boot sector: the FAT, the root directory, then the data clusters
    // (the files and /dir live in the first few dozen).
    let (fat_at, fat_len) = fat_region(&base, lamfat::FatType::Fat16);
    let root_at = fat_at + usize::from(base[16]) * fat_len;
    let root_len = usize::from(u16::from_le_bytes([base[17], base[18]])) * 32;
    let hot = root_at + root_len + 64 * 1024;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for seed in 1..=cases {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut img = base.clone();
            let flips = 1 + next(&mut x) % 12;
            for _ in 0..flips {
                let r = next(&mut x);
                let v = match next(&mut x) % 4 {
                    0 => (next(&mut x) % 4) as u16,
                    1 => 0xFFF0 + (next(&mut x) % 16) as u16,
                    2 => (next(&mut x) % 9000) as u16,
                    _ => next(&mut x) as u16,
                };
                let at = match r % 4 {
                    // Any byte of the metadata and the first clusters.
                    0 => {
                        let at = (next(&mut x) % hot as u64) as usize;
                        img[at] = v as u8;
                        continue;
                    }
                    // A FAT entry of the first hundred clusters (in use by the files).
                    1 => fat_at + 2 * (next(&mut x) % 100) as usize,
                    // A directory entry's first-cluster field (low or high word), or its size.
                    _ => {
                        let entries = (root_len + 32 * 1024) / 32;
                        let e = (next(&mut x) % entries as u64) as usize * 32;
                        let e = if e < root_len {
                            root_at + e
                        } else {
                            root_at + root_len + (e - root_len)
                        };
                        e + [26, 20, 28, 30][(next(&mut x) % 4) as usize]
                    }
                };
                img[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
            let r = std::panic::catch_unwind(move || exercise(img));
            if r.is_err() {
                let _ = tx.send(Err(seed));
                return;
            }
        }
        let _ = tx.send(Ok(cases));
    });
    match rx.recv_timeout(Duration::from_secs(600)) {
        Ok(Ok(n)) => assert!(n > 0),
        Ok(Err(seed)) => panic!("seed {seed}: the server panicked"),
        Err(e) => panic!("the fuzz did not finish: {e:?} (a hang)"),
    }
}
