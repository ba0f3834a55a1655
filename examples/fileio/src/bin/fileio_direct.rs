// SPDX-License-Identifier: BSD-2-Clause
//! `fileio_direct`: **not a PD**. The peer of the fileio benchmark (`cargo bench -p xtask --bench
//! fileio`): the same FAT backend the `fs_fat` server runs ([`lions_fs::FatFs`] on lamfat, over
//! the same 4 KiB-block [`BlockDevice`] interface and the same block cache configuration as the
//! server has over its 2 MiB blk data region), used directly in this one Linux process on a disk
//! image, with no client, server, blk virtualiser or driver in between.
//!
//! ```text
//! fileio_direct <image> <MiB> [<bytes per call>]
//! ```
//!
//! It finds partition 1 with lions-blk's partition-table reader (the virtualiser's), mounts it,
//! writes `/bench.bin` of `<MiB>` MiB in 32 KiB writes, syncs and closes it, reads it all back in
//! 32 KiB reads checking every byte, removes it and unmounts: the same work as the `fileio` PD's
//! bench mode. With `<bytes per call>` (at most 32 KiB) each backend read and write moves that many
//! bytes instead (4096: what the FS server's bounce buffer hands the backend per call). It prints
//! the same `bench write|read <bytes> bytes in <ns> ns (<rate>)` lines, timed with the monotonic
//! clock. Block I/O is `pread`/`pwrite` on the image and a FLUSH is `fdatasync`, as in the host blk
//! driver.

use fileio_example::{BENCH_CHUNK, BENCH_PATH, BenchLine, fill_pattern, pattern_mismatch};
use lions_blk::partition::{Partitioner, Step};
use lions_fs::{AccessMode, BlockDevice, BlockError, FatFs, FsBackend, OpenFlags, OpenOptions};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Instant;

/// Bytes per block (the sDDF transfer unit, as through the blk stack).
const BLOCK_BYTES: usize = 4096;
const BLOCK: u64 = BLOCK_BYTES as u64;
/// Blocks of the FAT server's blk data region in the fileio system (2 MiB).
const SERVER_DATA_BLOCKS: usize = 512;

/// A partition of an image file as 4 KiB blocks.
struct FileDisk {
    file: File,
    /// Byte offset of the partition in the file.
    start: u64,
    blocks: u64,
}

impl FileDisk {
    fn at(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        lions_fs::block::check_transfer(self, lba, len)?;
        Ok(self.start + lba * BLOCK)
    }
}

impl BlockDevice for FileDisk {
    fn block_size(&self) -> usize {
        BLOCK_BYTES
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let at = self.at(lba, buf.len())?;
        self.file.read_exact_at(buf, at).map_err(|_| BlockError::Io)
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let at = self.at(lba, buf.len())?;
        self.file.write_all_at(buf, at).map_err(|_| BlockError::Io)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.file.sync_data().map_err(|_| BlockError::Io)
    }
}

/// Partition `index` (from 0) of the image, as the blk virtualiser finds it: (byte offset,
/// blocks).
fn partition(file: &File, index: u32) -> Result<(u64, u64), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let (mut p, mut step) = Partitioner::new(512, len / BLOCK, 1 << 20);
    while let Step::Read { offset, len } = step {
        let mut buf = vec![0u8; len];
        step = match file.read_exact_at(&mut buf, offset) {
            Ok(()) => p.feed(&buf),
            Err(_) => p.read_failed(),
        };
    }
    let table = p.table().map_err(|e| format!("partition table: {e}"))?;
    let e = table
        .get(index)
        .ok_or_else(|| format!("no partition {}", index + 1))?;
    Ok((e.start * BLOCK, e.blocks))
}

fn run(image: &str, mib: u64, call: usize) -> Result<(), String> {
    let file = File::options()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| format!("{image}: {e}"))?;
    let (start, blocks) = partition(&file, 0)?;
    // The cache the FS server has over its 2 MiB blk data region (sdfgen's size for this
    // system): the library at its best, so the ratio measures the stack, not a cache size.
    let mut fs = FatFs::with_cache(
        FileDisk {
            file,
            start,
            blocks,
        },
        lions_fs::blk::cache_config(SERVER_DATA_BLOCKS),
    );
    let st = |what: &'static str| move |s| format!("{what}: {s:?}");
    fs.mount().map_err(st("mount"))?;
    let _ = fs.remove(BENCH_PATH);
    let bytes = mib << 20;
    let mut buf = vec![0u8; BENCH_CHUNK];

    let t0 = Instant::now();
    let create = OpenFlags {
        access: AccessMode::ReadWrite,
        options: OpenOptions::CREATE,
    };
    let h = fs.open(BENCH_PATH, create).map_err(st("create"))?;
    fs.truncate(h, 0).map_err(st("truncate"))?;
    let mut at = 0u64;
    while at < bytes {
        let n = usize::try_from(bytes - at).map_or(call, |l| l.min(call));
        fill_pattern(at, &mut buf[..n]);
        let mut done = 0;
        while done < n {
            match fs.write(h, at + done as u64, &buf[done..n]) {
                Ok(0) => return Err("write: no progress (disk full?)".into()),
                Ok(k) => done += k,
                Err(s) => return Err(format!("write: {s:?}")),
            }
        }
        at += n as u64;
    }
    fs.sync(h).map_err(st("sync"))?;
    fs.close(h).map_err(st("close"))?;
    let t1 = Instant::now();

    let h = fs
        .open(BENCH_PATH, OpenFlags::new(AccessMode::ReadOnly))
        .map_err(st("open"))?;
    if fs.size(h).map_err(st("size"))? != bytes {
        return Err("the file does not have the length written".into());
    }
    let mut at = 0u64;
    loop {
        let n = fs.read(h, at, &mut buf[..call]).map_err(st("read"))?;
        if n == 0 {
            break;
        }
        if let Some(bad) = pattern_mismatch(at, &buf[..n]) {
            return Err(format!("byte {bad} is not the byte written"));
        }
        at += n as u64;
    }
    fs.close(h).map_err(st("close"))?;
    let t2 = Instant::now();
    if at != bytes {
        return Err(format!("read {at} bytes of {bytes}"));
    }
    fs.remove(BENCH_PATH).map_err(st("remove"))?;
    fs.unmount().map_err(st("unmount"))?;

    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    for (what, ns) in [("write", ns(t1 - t0)), ("read", ns(t2 - t1))] {
        println!("fileio_direct: {}", BenchLine { what, bytes, ns });
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let call = match args.get(3).map(|c| c.parse::<usize>()) {
        None => Ok(BENCH_CHUNK),
        Some(Ok(c)) if (1..=BENCH_CHUNK).contains(&c) => Ok(c),
        Some(_) => Err(()),
    };
    let (Some(image), Some(mib), Ok(call)) =
        (args.get(1), args.get(2).and_then(|m| m.parse().ok()), call)
    else {
        eprintln!("usage: fileio_direct <image> <MiB> [<bytes per call, 1..=32768>]");
        return ExitCode::from(2);
    };
    match run(image, mib, call) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fileio_direct: {e}");
            ExitCode::FAILURE
        }
    }
}
