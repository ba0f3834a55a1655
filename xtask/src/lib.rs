// SPDX-License-Identifier: BSD-2-Clause
//! # xtask: build, assemble, run and draw the example systems
//!
//! `cargo xtask <command> <example>` (the alias lives in `.cargo/config.toml`) drives the system
//! assembly flow of `design.md` for one folder under `examples/`:
//!
//! | command | what it does |
//! |---|---|
//! | `build <ex> [--board B] [--release]` | venv, metaprogram, `cargo build`, per-PD images with their config sections written; on `qemu_virt_aarch64` each image checked ([`elf`]) and `loader.img` made by the Microkit tool when `$MICROKIT_SDK` is set |
//! | `run <ex> [--board B] [--release] [-- ARGS]` | `build`, then replaces itself with the `lions-host` launcher on the `.system` file, or with `qemu-system-aarch64` booting `loader.img` (extra `ARGS` go to the launcher or QEMU) |
//! | `graph <ex> [--board B] [-o FILE.svg]` | metaprogram only, then draws the `.system` as SVG |
//! | `bench insns [WORKLOAD...] [--json] [--units N] [--top N]` | instructions per unit inside each component under callgrind, beside sDDF's C figures ([`insns`]) |
//! | `size [--files]` | code lines of each component and class library beside the paper's Table 2 ([`size`]) |
//!
//! Boards: `host` (default; one Linux process per PD) and `qemu_virt_aarch64` (seL4 Microkit 2.3.0:
//! PDs built for `aarch64-unknown-none` with `lions-os/debug-print`, the SDK's `debug`
//! configuration; see [`microkit`]).
//!
//! ## The assembly flow, step by step
//!
//! 1. [`meta::ensure_venv`]: `interop/setup-venv.sh` makes (once) `target/sdfgen-venv` with the
//!    pinned `sdfgen==0.35.1`; nothing is installed by hand.
//! 2. [`meta::run_metaprogram`]: `examples/<ex>/meta.py --board B --output target/lions/<ex>/B/`.
//!    The metaprogram uses `tools/lions_meta.py`, which wraps sdfgen and writes, next to the
//!    `.system` file and the `.data` blobs, an `assembly.json` ([`assembly::Assembly`]) saying which
//!    Cargo binary each PD's image comes from and which blob goes into which ELF section. There is
//!    no hand-kept list of images or blobs anywhere: the metaprogram is the only source.
//! 3. `cargo build` of the binaries the assembly names (the example's package by default), for
//!    the board's target ([`cli::Board::target`]).
//! 4. [`assembly::assemble`]: for each PD, copy its binary to `<output>/<pd>.elf` and overwrite
//!    the bytes of each named section with its blob ([`patch::write_section`]: the section must be
//!    file-backed (`SHT_PROGBITS`) and exactly the blob's size).
//! 5. seL4 boards: every image checked ([`elf::PdElf::check`]: symbol table, the six Microkit
//!    symbols and their sizes, `setvar` symbols, segments on separate pages, entry point, config
//!    sections), then `$MICROKIT_SDK/bin/microkit` makes `<output>/loader.img` (without the SDK,
//!    `build` says so and what to download; `run` refuses).
//! 6. `run` only: `lions-host <output>/<ex>.system --search-path <output> ARGS...`, or
//!    `qemu-system-aarch64 -machine virt,virtualization=on ... -device loader,file=loader.img,...`.
//!
//! Errors are plain sentences naming what was being done ([`Error`]); `main` prints them and exits
//! with status 1.

pub mod assembly;
pub mod cli;
pub mod elf;
pub mod fuzz;
pub mod graph;
pub mod insns;
pub mod meta;
pub mod microkit;
pub mod patch;
pub mod size;
pub mod tasks;

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure of an xtask command, as the sentence shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    /// An I/O error on `path` while `doing` something.
    pub fn io(doing: &str, path: &Path, e: &std::io::Error) -> Self {
        Self(format!("{doing} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}
