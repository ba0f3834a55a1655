// SPDX-License-Identifier: BSD-2-Clause
//! The FAT backend against real images: images formatted here, by `mkfs.fat` (dosfstools) and by
//! the crates.io `fatfs` crate; what it writes is checked with `fsck.fat -n`, `mtype` (mtools)
//! and `fatfs`. The dosfstools/mtools tests fail with a clear message when the tools are missing
//! (CI installs them).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{fat_backend, formatted_disk};
use lions_fs::fat::{FatFs, RamDisk};
use lions_fs::{AccessMode, FsBackend, OpenFlags, OpenOptions, Status};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Command;

const RW_CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};
const RO: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);

fn mounted(mib: u64) -> (FatFs, RamDisk) {
    let (mut fat, disk) = fat_backend(mib);
    fat.mount().unwrap();
    (fat, disk)
}

fn listing(fat: &mut FatFs, path: &str) -> Vec<String> {
    let d = fat.dir_open(path).unwrap();
    let mut names = Vec::new();
    let mut buf = [0u8; 765];
    loop {
        match fat.dir_read(d, &mut buf) {
            Ok(n) => names.push(String::from_utf8(buf[..n].to_vec()).unwrap()),
            Err(Status::EndOfDirectory) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    fat.dir_close(d).unwrap();
    names
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_all(fat: &mut FatFs, h: u32) -> Vec<u8> {
    let size = fat.size(h).unwrap() as usize;
    let mut out = vec![0u8; size + 10];
    let n = fat.read(h, 0, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn files_and_directories() {
    let (mut fat, _disk) = mounted(16);
    fat.dir_create("/a").unwrap();
    fat.dir_create("/a/b").unwrap();
    assert_eq!(fat.dir_create("/a/b"), Err(Status::AlreadyExists));
    assert_eq!(fat.dir_create("/x/y"), Err(Status::NoFile));
    // A long name, a multi-cluster file written in pieces and read back at odd offsets.
    let big = pattern(300_000, 7);
    let h = fat
        .open("/a/b/A rather long file name.bin", RW_CREATE)
        .unwrap();
    for (i, piece) in big.chunks(4096).enumerate() {
        assert_eq!(fat.write(h, (i * 4096) as u64, piece).unwrap(), piece.len());
    }
    assert_eq!(fat.size(h).unwrap(), 300_000);
    let mut buf = vec![0u8; 10_000];
    assert_eq!(fat.read(h, 123_457, &mut buf).unwrap(), 10_000);
    assert_eq!(buf, big[123_457..133_457]);
    assert_eq!(
        fat.read(h, 299_990, &mut buf).unwrap(),
        10,
        "short at the end"
    );
    assert_eq!(fat.read(h, 300_000, &mut buf).unwrap(), 0);
    // Writing past the end fills the gap with zeros.
    assert_eq!(fat.write(h, 310_000, b"tail").unwrap(), 4);
    let all = read_all(&mut fat, h);
    assert_eq!(all.len(), 310_004);
    assert!(all[300_000..310_000].iter().all(|&b| b == 0));
    // Truncate: shrink, then extend with zeros.
    fat.truncate(h, 5000).unwrap();
    assert_eq!(fat.size(h).unwrap(), 5000);
    fat.truncate(h, 9000).unwrap();
    let all = read_all(&mut fat, h);
    assert_eq!(all[..5000], big[..5000]);
    assert!(all[5000..].iter().all(|&b| b == 0) && all.len() == 9000);
    fat.truncate(h, 0).unwrap();
    assert_eq!(fat.size(h).unwrap(), 0);
    fat.write(h, 0, b"short").unwrap();
    fat.sync(h).unwrap();
    fat.close(h).unwrap();
    // Names match case-insensitively; stat sees the size.
    let st = fat.stat("/A/B/a RATHER long FILE name.bin").unwrap();
    assert_eq!(st.size, 5);
    assert_eq!(st.mode, 0o100_644);
    assert_eq!(fat.stat("/a").unwrap().mode, 0o040_755);
    assert_eq!(fat.stat("/").unwrap().mode, 0o040_755);
    assert_eq!(fat.stat("/a/nope"), Err(Status::NoFile));
    assert_eq!(
        fat.stat("/a/b/A rather long file name.bin/x"),
        Err(Status::NotDirectory)
    );
    // Rename across directories, list, remove.
    fat.rename("/a/b/A rather long file name.bin", "/a/moved.txt")
        .unwrap();
    assert_eq!(listing(&mut fat, "/a"), ["b", "moved.txt"]);
    assert!(listing(&mut fat, "/a/b").is_empty());
    assert_eq!(fat.rename("/a/nope", "/a/x"), Err(Status::NoFile));
    assert_eq!(fat.rename("/a", "/a/b/inside"), Err(Status::InvalidPath));
    assert_eq!(fat.rename("/a", "/a"), Ok(()), "onto itself: nothing to do");
    fat.rename("/a/b", "/c").unwrap();
    assert_eq!(listing(&mut fat, "/"), ["a", "c"]);
    assert_eq!(
        fat.remove("/a"),
        Err(Status::NoFile),
        "a directory is not a file"
    );
    assert_eq!(fat.dir_remove("/a/moved.txt"), Err(Status::NotDirectory));
    assert_eq!(fat.dir_remove("/a"), Err(Status::NotEmpty));
    fat.remove("/a/moved.txt").unwrap();
    fat.dir_remove("/a").unwrap();
    fat.dir_remove("/c").unwrap();
    assert!(listing(&mut fat, "/").is_empty());
    // Paths with dots and repeated slashes.
    fat.dir_create("/d").unwrap();
    let h = fat.open("//d/./../d/f", RW_CREATE).unwrap();
    fat.close(h).unwrap();
    assert_eq!(listing(&mut fat, "/d/.."), ["d"]);
    assert_eq!(
        fat.open("/d", RO),
        Err(Status::NoFile),
        "a directory is not a file"
    );
    assert_eq!(fat.dir_open("/d/f"), Err(Status::NotDirectory));
    assert_eq!(fat.open("/d/bad*name", RW_CREATE), Err(Status::InvalidName));
    // lamfat 0.4.3 panics making a short name for a name that begins with a multi-byte
    // character; the backend refuses such new names instead of letting a client crash it.
    assert_eq!(
        fat.open("/\u{4e2d} \u{4e2d}", RW_CREATE),
        Err(Status::InvalidName)
    );
    assert_eq!(fat.dir_create("/\u{e9}t\u{e9}"), Err(Status::InvalidName));
    assert_eq!(fat.rename("/d/f", "/d/\u{e9}"), Err(Status::InvalidName));
    let h = fat.open("/d/caf\u{e9} \u{4e2d}.txt", RW_CREATE).unwrap();
    fat.close(h).unwrap();
    assert_eq!(listing(&mut fat, "/d"), ["f", "caf\u{e9} \u{4e2d}.txt"]);
}

#[test]
fn directory_positions() {
    let (mut fat, _disk) = mounted(8);
    fat.dir_create("/dir").unwrap();
    for i in 0..20 {
        let h = fat.open(&format!("/dir/file{i:02}"), RW_CREATE).unwrap();
        fat.close(h).unwrap();
    }
    let d = fat.dir_open("/dir").unwrap();
    let mut name = [0u8; 64];
    let mut seen = Vec::new();
    for i in 0..20u64 {
        assert_eq!(fat.dir_tell(d).unwrap(), i);
        let n = fat.dir_read(d, &mut name).unwrap();
        seen.push(String::from_utf8(name[..n].to_vec()).unwrap());
    }
    assert_eq!(fat.dir_read(d, &mut name), Err(Status::EndOfDirectory));
    assert_eq!(seen[0], "file00");
    assert_eq!(seen[19], "file19");
    fat.dir_seek(d, 7).unwrap();
    assert_eq!(fat.dir_tell(d).unwrap(), 7);
    let n = fat.dir_read(d, &mut name).unwrap();
    assert_eq!(&name[..n], seen[7].as_bytes());
    fat.dir_seek(d, 100).unwrap();
    assert_eq!(fat.dir_read(d, &mut name), Err(Status::EndOfDirectory));
    assert_eq!(fat.dir_seek(d, -1), Err(Status::Error));
    fat.dir_rewind(d).unwrap();
    assert_eq!(fat.dir_tell(d).unwrap(), 0);
    let n = fat.dir_read(d, &mut name[..3]);
    assert_eq!(n, Err(Status::InvalidBuffer), "too small: not consumed");
    let n = fat.dir_read(d, &mut name).unwrap();
    assert_eq!(&name[..n], b"file00");
    // Removing a directory that is open is refused.
    assert_eq!(
        fat.rename("/dir", "/dir2"),
        Err(Status::OutstandingOperations)
    );
    fat.dir_close(d).unwrap();
    fat.rename("/dir", "/dir2").unwrap();
}

#[test]
fn open_objects_are_protected() {
    let (mut fat, _disk) = mounted(8);
    fat.dir_create("/p").unwrap();
    let h = fat.open("/p/f", RW_CREATE).unwrap();
    let h2 = fat.open("/P/F", RO).unwrap();
    assert_eq!(h, h2, "one object for one file");
    assert_eq!(fat.open_objects(), 1);
    fat.write(h, 0, b"via one handle").unwrap();
    assert_eq!(fat.size(h2).unwrap(), 14);
    assert_eq!(fat.remove("/p/f"), Err(Status::OutstandingOperations));
    assert_eq!(fat.rename("/p/f", "/g"), Err(Status::OutstandingOperations));
    assert_eq!(
        fat.rename("/p", "/q"),
        Err(Status::OutstandingOperations),
        "open below"
    );
    fat.close(h).unwrap();
    assert_eq!(
        fat.remove("/p/f"),
        Err(Status::OutstandingOperations),
        "still open once"
    );
    fat.close(h2).unwrap();
    assert_eq!(fat.open_objects(), 0);
    fat.rename("/p", "/q").unwrap();
    fat.remove("/q/f").unwrap();
}

#[test]
fn device_errors_are_statuses() {
    let (mut fat, disk) = mounted(8);
    let h = fat.open("/f", RW_CREATE).unwrap();
    disk.set_failing(true);
    assert_eq!(fat.dir_create("/d"), Err(Status::Error));
    assert_eq!(fat.write(h, 0, &[1; 8192]), Err(Status::Error));
    disk.set_failing(false);
    assert_eq!(fat.write(h, 0, b"ok").unwrap(), 2);
    let (mut blank, _) = (FatFs::new(RamDisk::new(512, 2048)), ());
    assert_eq!(blank.mount(), Err(Status::Error), "no file system");
}

#[test]
fn a_full_volume_gives_short_writes_then_denied() {
    let (mut fat, _disk) = mounted(1);
    let h = fat.open("/fill", RW_CREATE).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match fat.write(h, total, &chunk) {
            Ok(n) => {
                total += n as u64;
                if n < chunk.len() {
                    break;
                }
            }
            Err(e) => {
                assert_eq!(e, Status::ServerWasDenied);
                break;
            }
        }
    }
    assert!(total > 800_000 && total < 1 << 20, "{total}");
    assert_eq!(fat.write(h, total, b"more"), Err(Status::ServerWasDenied));
}

/// A block size of 4 KiB (sDDF's transfer unit) under 512-byte FAT sectors.
#[test]
fn four_kib_blocks() {
    let disk = RamDisk::new(4096, 1024);
    lions_fs::fat::format(disk.clone()).unwrap();
    let mut fat = FatFs::new(disk.clone());
    fat.mount().unwrap();
    let data = pattern(50_001, 3);
    let h = fat.open("/x", RW_CREATE).unwrap();
    fat.write(h, 0, &data).unwrap();
    fat.close(h).unwrap();
    fat.unmount().unwrap();
    fat.mount().unwrap();
    let h = fat.open("/x", RO).unwrap();
    assert_eq!(read_all(&mut fat, h), data);
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed: this test needs dosfstools and mtools \
         (apt-get install dosfstools mtools; CI installs them)"
    );
}

fn temp_image(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lions-fs-{}-{tag}.img", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn fsck_clean(image: &[u8], tag: &str) {
    let p = temp_image(tag, image);
    let out = Command::new(tool("fsck.fat"))
        .arg("-n")
        .arg(&p)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    std::fs::remove_file(&p).ok();
    assert!(out.status.success(), "fsck.fat -n {tag}:\n{text}");
    assert!(
        !text.contains("Dirty bit"),
        "{tag}: volume left dirty:\n{text}"
    );
}

/// What the server writes, fsck.fat finds clean and the `fatfs` crate reads back.
#[test]
fn images_written_here_are_clean_and_readable_elsewhere() {
    let (mut fat, disk) = mounted(16);
    fat.dir_create("/Logs").unwrap();
    let big = pattern(200_000, 9);
    let h = fat.open("/Logs/Boot log.txt", RW_CREATE).unwrap();
    fat.write(h, 0, &big).unwrap();
    fat.close(h).unwrap();
    let h = fat.open("/KEEP.TXT", RW_CREATE).unwrap();
    fat.write(h, 0, b"kept").unwrap();
    fat.close(h).unwrap();
    let h = fat.open("/gone", RW_CREATE).unwrap();
    fat.write(h, 0, &big[..50_000]).unwrap();
    fat.close(h).unwrap();
    fat.remove("/gone").unwrap();
    fat.unmount().unwrap();
    let image = disk.image();
    fsck_clean(&image, "ours");
    let mut cur = std::io::Cursor::new(image);
    let fs = fatfs::FileSystem::new(&mut cur, fatfs::FsOptions::new()).unwrap();
    let mut f = fs.root_dir().open_file("Logs/Boot log.txt").unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, big);
    let names: Vec<String> = fs
        .root_dir()
        .iter()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["Logs", "KEEP.TXT"]);
}

/// Images made by mkfs.fat (FAT12, FAT16, FAT32) are served, and stay clean for fsck.fat and
/// readable with mtools.
#[test]
fn mkfs_fat_images() {
    for (bits, mib) in [(12, 2u64), (16, 16), (32, 40)] {
        let tag = format!("mkfs{bits}");
        let p = temp_image(&tag, &vec![0u8; (mib << 20) as usize]);
        let out = Command::new(tool("mkfs.fat"))
            .args(["-F", &bits.to_string(), "-n", "LIONS"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let image = std::fs::read(&p).unwrap();
        let disk = RamDisk::from_image(image, 512);
        let mut fat = FatFs::new(disk.clone());
        fat.mount().unwrap();
        fat.dir_create("/sub dir").unwrap();
        let data = pattern(70_000, bits);
        let h = fat.open("/sub dir/hello world.txt", RW_CREATE).unwrap();
        fat.write(h, 0, &data).unwrap();
        fat.close(h).unwrap();
        assert_eq!(
            listing(&mut fat, "/"),
            ["sub dir"],
            "FAT{bits}: the label is no entry"
        );
        fat.unmount().unwrap();
        let image = disk.image();
        fsck_clean(&image, &tag);
        std::fs::write(&p, &image).unwrap();
        let out = Command::new(tool("mtype"))
            .arg("-i")
            .arg(&p)
            .arg("::/sub dir/hello world.txt")
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap();
        std::fs::remove_file(&p).ok();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data, "FAT{bits}: mtype reads what we wrote");
    }
}

/// An image the `fatfs` crate formatted and filled is served here.
#[test]
fn images_written_by_fatfs_are_served() {
    let mut cur = std::io::Cursor::new(vec![0u8; 4 << 20]);
    fatfs::format_volume(&mut cur, fatfs::FormatVolumeOptions::new()).unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut cur, fatfs::FsOptions::new()).unwrap();
        fs.root_dir().create_dir("From fatfs").unwrap();
        let mut f = fs.root_dir().create_file("From fatfs/Über.txt").unwrap();
        f.write_all(b"written by fatfs 0.3").unwrap();
    }
    let disk = RamDisk::from_image(cur.into_inner(), 512);
    let mut fat = FatFs::new(disk);
    fat.mount().unwrap();
    assert_eq!(listing(&mut fat, "/From fatfs"), ["Über.txt"]);
    let h = fat.open("/from FATFS/über.TXT", RO).unwrap();
    assert_eq!(read_all(&mut fat, h), b"written by fatfs 0.3");
}

#[test]
fn formatted_disks_hold_a_volume() {
    let disk = formatted_disk(4);
    let mut fat = FatFs::new(disk);
    fat.mount().unwrap();
    assert!(fat.is_mounted());
    fat.unmount().unwrap();
    assert!(fat.into_device().is_some());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever names a client sends, the backend answers with a status and the volume stays
    /// consistent for the `fatfs` crate: no panic inside the trusted server.
    #[test]
    fn odd_names_never_panic(
        ops in proptest::collection::vec(
            (0u8..6, "[a-c. ~*?:/\u{e9}\u{4e2d}]{0,12}", "[a-c. /]{0,8}"),
            1..40,
        ),
    ) {
        let (mut fat, disk) = mounted(2);
        for (op, a, b) in &ops {
            let _ = match op {
                0 => fat.open(a, RW_CREATE).and_then(|h| fat.close(h)),
                1 => fat.dir_create(a),
                2 => fat.rename(a, b),
                3 => fat.remove(a),
                4 => fat.dir_remove(a),
                _ => fat.stat(a).map(drop),
            };
        }
        fat.unmount().unwrap();
        let mut cur = std::io::Cursor::new(disk.image());
        let fs = fatfs::FileSystem::new(&mut cur, fatfs::FsOptions::new()).unwrap();
        for e in fs.root_dir().iter() {
            e.unwrap();
        }
    }
}
