// SPDX-License-Identifier: BSD-2-Clause
//! # fileio: a client of the FAT file-system server
//!
//! What the `fileio` PD does on partition 1 of the disk, and what its test and benchmark check
//! from outside, in one place: the paths, the contents, and the byte pattern of the large files.
//!
//! | path | made by | after a run |
//! |---|---|---|
//! | [`HELLO_PATH`] | `make-disk.sh` (mtools), [`HELLO_TEXT`] | unchanged (the PD reads it) |
//! | [`LOG_DIR`], [`OLD_DIR`] | the PD (`DIR_CREATE`) | present |
//! | [`TODAY_PATH`] | the PD writes [`LOG_TEXT`] | renamed to [`YESTERDAY_PATH`] |
//! | [`DATA_DIR`], [`PATTERN_PATH`] | the PD writes [`PATTERN_LEN`] bytes of [`pattern_byte`] | present |
//! | [`SCRATCH_PATH`], [`EMPTY_DIR`] | the PD | removed |
//! | [`BENCH_PATH`] | the PD in bench mode ([`BENCH_ENV`]) | removed |
#![cfg_attr(not(test), no_std)]

/// Written on partition 1 by `make-disk.sh` before the system runs; the PD reads it.
pub const HELLO_PATH: &str = "/hello.txt";
/// The contents of [`HELLO_PATH`] (the same bytes as in `make-disk.sh`).
pub const HELLO_TEXT: &[u8] = b"Hello from mtools: make-disk.sh put this file on partition 1.\n";

/// A directory the PD makes.
pub const LOG_DIR: &str = "/logs";
/// A directory the PD makes inside [`LOG_DIR`].
pub const OLD_DIR: &str = "/logs/old";
/// A file the PD writes, then renames to [`YESTERDAY_PATH`].
pub const TODAY_PATH: &str = "/logs/today.txt";
/// Where [`TODAY_PATH`] ends up.
pub const YESTERDAY_PATH: &str = "/logs/old/yesterday.txt";
/// The contents of [`TODAY_PATH`] (later [`YESTERDAY_PATH`]).
pub const LOG_TEXT: &[u8] = b"09:00 mounted the FAT volume on partition 1\n\
09:01 made /logs and /logs/old\n\
09:02 wrote this file as /logs/today.txt\n\
09:03 it will be renamed to /logs/old/yesterday.txt\n";

/// A directory the PD makes for [`PATTERN_PATH`].
pub const DATA_DIR: &str = "/data";
/// A file of [`PATTERN_LEN`] bytes of [`pattern_byte`], written in several requests.
pub const PATTERN_PATH: &str = "/data/pattern.bin";
/// Its length: many clusters, several 32 KiB requests, not a multiple of 4 KiB.
pub const PATTERN_LEN: u64 = 300_000;

/// A file the PD writes and removes.
pub const SCRATCH_PATH: &str = "/scratch.txt";
/// A directory the PD makes and removes.
pub const EMPTY_DIR: &str = "/empty";

/// The file of the bench mode (written, read back, removed).
pub const BENCH_PATH: &str = "/bench.bin";
/// The environment variable that turns the bench mode on: its value is the file's size in MiB.
pub const BENCH_ENV: &str = "LIONS_FILEIO_BENCH";
/// Bytes per write or read of the bench: one FS request (the client library's share slot).
pub const BENCH_CHUNK: usize = 32 * 1024;

/// `S_IFMT` and `S_IFDIR` of a stat's `mode`.
pub const S_IFMT: u64 = 0o170_000;
/// The file-type bits of a directory.
pub const S_IFDIR: u64 = 0o040_000;

/// Byte `i` of [`PATTERN_PATH`] and [`BENCH_PATH`]: `(i % 251) ^ (i >> 12)`, truncated to a byte
/// (251 is prime, so a shifted or repeated block shows; `i >> 12` changes per 4 KiB block).
#[allow(clippy::cast_possible_truncation)] // Keeping the low byte is the point.
pub const fn pattern_byte(i: u64) -> u8 {
    ((i % 251) ^ (i >> 12)) as u8
}

/// The pattern from file offset `offset` on, byte by byte, without a division per byte (the
/// bench moves many MiB through it).
struct Pattern {
    at: u64,
    rem: u64,
    high: u64,
}

impl Pattern {
    fn new(offset: u64) -> Self {
        Self {
            at: offset,
            rem: offset % 251,
            high: offset >> 12,
        }
    }
}

impl Iterator for Pattern {
    type Item = u8;

    #[allow(clippy::cast_possible_truncation)] // Keeping the low byte is the point.
    fn next(&mut self) -> Option<u8> {
        let b = (self.rem ^ self.high) as u8;
        self.at = self.at.wrapping_add(1);
        self.rem = if self.rem == 250 { 0 } else { self.rem + 1 };
        if self.at & 0xfff == 0 {
            self.high = self.at >> 12;
        }
        Some(b)
    }
}

/// Fill `buf` with the pattern from file offset `offset`.
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    for (b, p) in buf.iter_mut().zip(Pattern::new(offset)) {
        *b = p;
    }
}

/// The file offset of the first byte of `buf` (read from file offset `offset`) that is not the
/// pattern, if any.
pub fn pattern_mismatch(offset: u64, buf: &[u8]) -> Option<u64> {
    buf.iter()
        .zip(Pattern::new(offset))
        .position(|(&b, p)| b != p)
        .map(|i| offset + i as u64)
}

/// `dir` and `name` joined with one `/` into `buf`; `None` if it does not fit.
pub fn join<'b>(dir: &str, name: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let dir = dir.trim_end_matches('/');
    let len = dir.len() + 1 + name.len();
    let out = buf.get_mut(..len)?;
    out[..dir.len()].copy_from_slice(dir.as_bytes());
    out[dir.len()] = b'/';
    out[dir.len() + 1..].copy_from_slice(name.as_bytes());
    core::str::from_utf8(out).ok()
}

/// Nanoseconds shown as seconds with three decimals, truncated (`1.234s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub u64);

impl core::fmt::Display for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000 / 1_000_000
        )
    }
}

/// A rate of `bytes` in `ns` nanoseconds shown as MB/s (10^6 bytes) with two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Bytes moved.
    pub bytes: u64,
    /// In this many nanoseconds.
    pub ns: u64,
}

impl core::fmt::Display for Rate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Hundredths of MB/s: bytes * 1e9 / ns / 1e6 * 100 = bytes * 1e5 / ns.
        let centi = u128::from(self.bytes) * 100_000 / u128::from(self.ns.max(1));
        write!(f, "{}.{:02} MB/s", centi / 100, centi % 100)
    }
}

/// One bench result line, as the PD and `fileio_direct` print it and `xtask/benches/fileio.rs`
/// parses it: `bench <what> <bytes> bytes in <ns> ns (<rate>)`, `what` being `write` or `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchLine<'a> {
    /// `write` or `read`.
    pub what: &'a str,
    /// Bytes moved.
    pub bytes: u64,
    /// In this many nanoseconds.
    pub ns: u64,
}

impl core::fmt::Display for BenchLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bench {} {} bytes in {} ns ({})",
            self.what,
            self.bytes,
            self.ns,
            Rate {
                bytes: self.bytes,
                ns: self.ns
            }
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pattern_changes_within_and_across_blocks() {
        let mut a = [0u8; 8192];
        fill_pattern(0, &mut a);
        assert_eq!(pattern_mismatch(0, &a), None);
        assert_ne!(a[..4096], a[4096..], "4 KiB blocks differ");
        assert_eq!(pattern_byte(251), 0, "i % 251 wraps");
        assert_eq!(pattern_byte(4096), (4096 % 251) as u8 ^ 1);
        a[5000] ^= 1;
        assert_eq!(pattern_mismatch(0, &a), Some(5000));
        assert_eq!(
            pattern_mismatch(1, &a[1..]),
            Some(5000),
            "offsets are file offsets"
        );
        assert!(
            pattern_mismatch(4096, &a[..4096]).is_some(),
            "a block read from the wrong place shows"
        );
    }

    #[test]
    fn the_fast_pattern_is_pattern_byte() {
        for offset in [0u64, 1, 250, 251, 4095, 4096, 1 << 20, (1 << 32) - 7] {
            let mut buf = [0u8; 9000];
            fill_pattern(offset, &mut buf);
            for (i, &b) in buf.iter().enumerate() {
                assert_eq!(b, pattern_byte(offset + i as u64), "offset {offset} + {i}");
            }
        }
    }

    #[test]
    fn joins_paths_into_a_buffer() {
        let mut buf = [0u8; 32];
        assert_eq!(join("/logs", "old", &mut buf), Some("/logs/old"));
        assert_eq!(join("/", "hello.txt", &mut buf), Some("/hello.txt"));
        assert_eq!(join("/logs/", "x", &mut buf), Some("/logs/x"));
        let mut small = [0u8; 4];
        assert_eq!(join("/logs", "old", &mut small), None);
    }

    #[test]
    fn times_and_rates_are_shown_without_floats() {
        assert_eq!(Secs(1_234_999_999).to_string(), "1.234s");
        assert_eq!(
            Rate {
                bytes: 16 << 20,
                ns: 1_000_000_000
            }
            .to_string(),
            "16.77 MB/s"
        );
        assert_eq!(
            Rate { bytes: 5, ns: 0 }.to_string(),
            "5000.00 MB/s",
            "0 ns counts as 1"
        );
        assert_eq!(
            BenchLine {
                what: "write",
                bytes: 1 << 20,
                ns: 500_000_000
            }
            .to_string(),
            "bench write 1048576 bytes in 500000000 ns (2.09 MB/s)"
        );
    }

    #[test]
    fn the_log_text_names_both_paths() {
        let text = core::str::from_utf8(LOG_TEXT).unwrap();
        assert!(text.contains(TODAY_PATH) && text.contains(YESTERDAY_PATH));
        assert!(text.ends_with('\n'));
    }
}
