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
//! | `account <ex> [--control FIFO]` | a snapshot of a running host system's shared memory, every net DMA buffer accounted for ([`account`]) |
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
//! Errors are typed ([`Error`]: usage, I/O on a path, a program that could not start or failed,
//! something missing, an input that is wrong); each displays as a plain sentence naming what was
//! being done. `main` prints it and exits with status 1 (2 for a usage error).

pub mod account;
pub mod assembly;
pub mod cli;
pub mod elf;
pub mod fuzz;
pub mod graph;
pub mod guest;
pub mod insns;
pub mod meta;
pub mod microkit;
pub mod patch;
pub mod size;
pub mod tasks;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why an xtask command failed. `Display` is the sentence shown to the user; `source` gives the
/// underlying I/O error where there is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line is not one xtask takes (`main` prints the usage and exits with 2).
    Usage(String),
    /// Reading or writing `path` failed while `doing` something ("reading", "writing", ...).
    Io {
        /// What was being done, as a verb phrase before the path.
        doing: String,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A program xtask runs (cargo, python, valgrind, QEMU, the Microkit tool) could not start.
    Start {
        /// The program, as the user would type it (`cargo build -p lions-bench`).
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A program xtask ran exited unsuccessfully.
    Failed {
        /// The program, as the user would type it, and what it was run on.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed that explains the failure, or why it matters (may be empty).
        detail: String,
    },
    /// Something this machine or checkout lacks (an SDK, valgrind, QEMU, an example), with what to
    /// install or set.
    Missing(String),
    /// An input is not what it must be: a system description, `assembly.json`, a PD image, an
    /// SDK's files, a tool's output. `context` names the file or thing, `detail` what is wrong.
    Invalid {
        /// The file or thing that is wrong (may be empty).
        context: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl Error {
    /// A usage error with this message.
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::Usage(msg.into())
    }

    /// An I/O error on `path` while `doing` something.
    pub fn io(doing: &str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            doing: doing.to_owned(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// `program` could not start.
    pub fn start(program: impl Into<String>, source: std::io::Error) -> Self {
        Self::Start {
            program: program.into(),
            source,
        }
    }

    /// `program` ran and exited with `status`; `detail` explains (may be empty).
    pub fn failed(
        program: impl Into<String>,
        status: std::process::ExitStatus,
        detail: impl Into<String>,
    ) -> Self {
        Self::Failed {
            program: program.into(),
            status,
            detail: detail.into(),
        }
    }

    /// Something missing from this machine or checkout, with what to do about it.
    pub fn missing(msg: impl Into<String>) -> Self {
        Self::Missing(msg.into())
    }

    /// `context` (a file or thing; may be empty) is wrong: `detail`.
    pub fn invalid(context: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self::Invalid {
            context: context.into(),
            detail: detail.to_string(),
        }
    }

    /// The same error with `context` (a file, a PD) put in front of what it says.
    #[must_use]
    pub fn within(self, context: impl fmt::Display) -> Self {
        match self {
            Self::Invalid {
                context: inner,
                detail,
            } if inner.is_empty() => Self::invalid(context.to_string(), detail),
            other => Self::invalid(context.to_string(), other),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) | Self::Missing(m) => f.write_str(m),
            Self::Io {
                doing,
                path,
                source,
            } => write!(f, "{doing} {}: {source}", path.display()),
            Self::Start { program, source } => write!(f, "{program}: cannot start: {source}"),
            Self::Failed {
                program,
                status,
                detail,
            } => {
                write!(f, "{program} failed ({status})")?;
                if detail.is_empty() {
                    Ok(())
                } else if detail.starts_with('\n') || detail.starts_with(':') {
                    f.write_str(detail)
                } else {
                    write!(f, ": {detail}")
                }
            }
            Self::Invalid { context, detail } if context.is_empty() => f.write_str(detail),
            Self::Invalid { context, detail } => write!(f, "{context}: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::Start { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
