// SPDX-License-Identifier: BSD-2-Clause
//! Command-line parsing, by hand: four subcommands and their options.

use crate::Error;
use std::fmt;
use std::path::PathBuf;

/// Usage text, printed by `cargo xtask help` and after a usage error.
pub const USAGE: &str = "\
usage: cargo xtask <command> <example> [options]

commands:
  build <example> [--board B] [--release]
        run the example's metaprogram, build its PD binaries and write their config sections
        (output in target/lions/<example>/<board>/); on qemu_virt_aarch64 also check every PD
        image and, with $MICROKIT_SDK set, make loader.img with the Microkit tool
  run <example> [--board B] [--release] [-- <launcher args>]
        build, then run it: host: the lions-host launcher (Ctrl-C stops it);
        qemu_virt_aarch64: qemu-system-aarch64 with the serial console here (Ctrl-A X quits)
  graph <example> [--board B] [-o FILE.svg] [--regions grouped|all|none]
        draw the system description as SVG (default target/lions/<example>/<example>.svg);
        memory regions one box per subsystem (grouped, the default), each one, or none
  bench insns [WORKLOAD...] [--json] [--units N] [--top N]
        build lions-bench and count, with valgrind's callgrind, the instructions per unit inside
        each component (net/serial/blk virtualisers, net copier) beside sDDF's C figures;
        WORKLOAD: name prefixes (net_rx, serial_tx_32, blk, ...; all by default); --json: JSON;
        --units: units per workload; --top: the N costliest functions of each workload
  size [--files]
        code lines (not blank, not comment, no test code) of each component and class
        library beside the paper's Table 2; --files: each file's count too
  swap <example> <pd> <binary> [--release] [--control FIFO]
        host board, a running `xtask run <example>`: build <binary> (a component binary of the
        PD's package, e.g. net_virt_tx_priority), write <pd>'s config sections into a copy of it
        and tell the launcher (its control FIFO, default target/lions/<example>/host/control.fifo,
        which `run` passes it) to stop <pd> and start that image in its place with its memory
        regions as they are (live policy swap; `... net_virt_tx net_virt_tx` swaps back)
  account <example> [--control FIFO] [--snapshot DIR]
        host board, a running `xtask run <example>`: ask the launcher for a snapshot of all
        shared memory (every PD stopped meanwhile) and account for every net DMA buffer (Rx
        DMA, each client's Rx and Tx): in which queue or held by which component, each exactly
        once; fails when one is lost, in two places or a descriptor names no buffer; and list
        what the blk virt has lent out. Take it with no traffic flowing (frames in flight are
        not an error of the system). --snapshot: account a saved snapshot folder instead (one
        with a problem is kept)
  fuzz <target>|all|list [--seconds N] [--seed S]
        run an adversarial attacker (release) for N s (default 60) with fresh seeds; a failure is
        shrunk and saved with its replay command under target/fuzz/<target>/
  guest-images
        make linux_vm's guest (arm64 Image and a busybox initramfs) from Debian's arm64 kernel
        and busybox-static packages, cached in target/guest-images/ ($LIONS_GUEST_IMAGES);
        needs `dpkg --add-architecture arm64 && apt-get update` once
  help  show this text

<example>: a folder name under examples/, or a path to a system folder of your own (a product
        outside this workspace: its Cargo workspace and meta.py, see templates/product); its
        PDs build in that folder, lions' component binaries in this checkout

boards: host (default): one Linux process per PD;
        qemu_virt_aarch64: seL4 Microkit (PDs for aarch64-unknown-none; loader.img and `run`
        need the Microkit SDK 2.3.0 in $MICROKIT_SDK, `run` needs qemu-system-aarch64)";

/// The whole help of `cargo xtask help` (`-h`, `--help`): [`USAGE`], then the `examples` (the
/// folders under `examples/` with a `meta.py`), the environment variables the examples, the host
/// board's drivers and xtask read, and the `lions-host` launcher's options (after `--` of `run`).
/// The one place the help text is kept: a new command or variable goes here.
pub fn help(examples: &[String]) -> String {
    let examples = if examples.is_empty() {
        "  (none found: examples/<name>/meta.py)".to_owned()
    } else {
        format!("  {}", examples.join(", "))
    };
    format!(
        "{USAGE}

examples (examples/<name>/, each with a README saying what it prints):
{examples}
  e.g. cargo xtask run hello; cargo xtask run serial; cargo xtask run timer;
       LIONS_NET=user cargo xtask run echo_server;
       examples/fileio/make-disk.sh target/fileio/disk.img &&
         LIONS_HOST_BLK_IMAGE=$PWD/target/fileio/disk.img cargo xtask run fileio

environment (the host board passes the launcher's environment to every PD):
  LIONS_NET=tap|user       echo_server's NIC: tap (default; a TAP, needs root or CAP_NET_ADMIN,
                           or a TAP made for you) or user (user-mode network, no privileges)
  LIONS_TAP=NAME           the TAP interface the tap driver opens (default lions0)
  LIONS_NET_FORWARD=LIST   user-mode network: host ports on 127.0.0.1 forwarded to clients,
                           comma-separated tcp|udp:HOSTPORT:GUESTIP:GUESTPORT
                           (e.g. udp:5555:10.0.2.10:1235,tcp:5555:10.0.2.10:1236)
  LIONS_HOST_BLK_IMAGE=F   fileio's disk image file (make it with examples/fileio/make-disk.sh);
                           LIONS_HOST_BLK_READ_ONLY=1 opens it read-only
  LIONS_FILEIO_BENCH=MIB   fileio also writes and reads back a file of MIB MiB and prints rates
  LIONS_WEB_CONNECTIONS=N  webserver (build time): connections served at once, 1..16 (default
                           8); LIONS_WEB_PORT=P its port (default 80). Its disk image is
                           LIONS_HOST_BLK_IMAGE (examples/webserver/make-disk.sh OUT [DIR])
  LIONS_HOST_SERIAL=PATH   a terminal or pty for the host serial driver instead of this one
  MICROKIT_SDK=DIR         the Microkit SDK 2.3.0 (qemu_virt_aarch64: loader.img and run)
  LIONS_VENV=DIR, PYTHON   where the sdfgen venv goes (default target/sdfgen-venv) and the
                           python3 that makes it
  CARGO_TARGET_DIR         output goes to $CARGO_TARGET_DIR/lions/<example>/<board>/

launcher options (host board: cargo xtask run <example> -- OPTIONS; see lions-host --help):
  --restart                restart a PD that faulted (up to --max-restarts times, default 3)
  --max-restarts N         the restart limit per PD
  --trace                  report starts, exits and scheduling decisions on stderr
  --stats                  print per-PD counters (notifications, PPCs, IRQs, restarts) at exit
  --no-rt                  do not ask for SCHED_FIFO priorities
  --search-path DIR        more folders for PD images (xtask passes the output folder)
  --control FIFO           operator commands (xtask passes <output>/control.fifo; see `swap`)
qemu_virt_aarch64: the arguments after -- go to qemu-system-aarch64 (devices, drives, netdevs)"
    )
}

/// A target board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// Linux, one process per PD (`lions-host`).
    Host,
    /// QEMU `virt` with an AArch64 core under seL4 Microkit.
    QemuVirtAarch64,
}

impl Board {
    /// Every board, in the order `--board` errors list them.
    pub const ALL: [Self; 2] = [Self::Host, Self::QemuVirtAarch64];

    /// The name used on the command line and by metaprograms.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::QemuVirtAarch64 => "qemu_virt_aarch64",
        }
    }

    /// Parse a board name; the error lists the known boards.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
                Error::usage(format!(
                    "unknown board `{name}`; known boards: {}",
                    known.join(", ")
                ))
            })
    }

    /// The Rust target PD binaries are built for (`None`: the host's own).
    pub const fn target(self) -> Option<&'static str> {
        match self {
            Self::Host => None,
            Self::QemuVirtAarch64 => Some("aarch64-unknown-none"),
        }
    }

    /// Whether PDs run under seL4 Microkit (images checked by [`crate::elf`], a system image made
    /// by the Microkit tool) rather than as host processes.
    pub const fn is_sel4(self) -> bool {
        matches!(self, Self::QemuVirtAarch64)
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `build` and `run` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    /// Folder name under `examples/`.
    pub example: String,
    /// Target board.
    pub board: Board,
    /// Build with the release profile (dev otherwise).
    pub release: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `build`.
    Build(BuildArgs),
    /// `run`, with the arguments after `--` for the launcher.
    Run {
        /// What to build.
        build: BuildArgs,
        /// Passed to `lions-host` after the `.system` file and `--search-path`.
        launcher_args: Vec<String>,
    },
    /// `graph`.
    Graph {
        /// Folder name under `examples/`.
        example: String,
        /// Board the metaprogram describes.
        board: Board,
        /// SVG file to write (default `target/lions/<ex>/<ex>.svg`).
        output: Option<PathBuf>,
        /// How memory regions are drawn (`--regions all|grouped|none`, default grouped).
        regions: crate::graph::Regions,
    },
    /// `bench insns`.
    BenchInsns(crate::insns::InsnsArgs),
    /// `fuzz`.
    Fuzz(crate::fuzz::FuzzArgs),
    /// `size [--files]`: print each file's count when set.
    Size {
        /// Print each file's count under its row.
        files: bool,
    },
    /// `guest-images`: make linux_vm's guest from Debian packages.
    GuestImages,
    /// `swap <example> <pd> <binary>`.
    Swap {
        /// Folder name under `examples/` (its host build is running).
        example: String,
        /// The PD to replace.
        pd: String,
        /// The binary target to run in its place.
        binary: String,
        /// Release profile.
        release: bool,
        /// The launcher's control FIFO (default `<output>/control.fifo`).
        control: Option<PathBuf>,
    },
    /// `account <example>`.
    Account {
        /// Folder name under `examples/` (its host build is running).
        example: String,
        /// The launcher's control FIFO (default `<output>/control.fifo`).
        control: Option<PathBuf>,
        /// A saved snapshot folder to account for instead of taking one.
        snapshot: Option<PathBuf>,
    },
    /// `help`, `-h`, `--help`.
    Help,
}

/// Parse the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let Some(cmd) = args.next() else {
        return Err(Error::usage("no command given"));
    };
    if matches!(cmd.as_str(), "help" | "-h" | "--help") {
        return Ok(Command::Help);
    }
    if cmd == "fuzz" {
        return crate::fuzz::parse(args);
    }
    if cmd == "size" {
        return parse_size(args);
    }
    if cmd == "guest-images" {
        return match args.next().as_deref() {
            None => Ok(Command::GuestImages),
            Some("-h" | "--help") => Ok(Command::Help),
            Some(other) => Err(Error::usage(format!(
                "guest-images takes no argument, got `{other}`"
            ))),
        };
    }
    if cmd == "swap" {
        return parse_swap(args);
    }
    if cmd == "account" {
        return parse_account(args);
    }
    if !matches!(cmd.as_str(), "build" | "run" | "graph" | "bench") {
        return Err(Error::usage(format!(
            "unknown command `{cmd}`; commands: build, run, graph, bench, size, swap, account, fuzz, guest-images, help"
        )));
    }
    if cmd == "bench" {
        return parse_bench(args);
    }
    parse_example_command(&cmd, args)
}

/// `size [--files]`.
fn parse_size(args: impl Iterator<Item = String>) -> Result<Command, Error> {
    let mut files = false;
    for arg in args {
        match arg.as_str() {
            "--files" => files = true,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(Error::usage(format!("`size` does not take `{arg}`"))),
        }
    }
    Ok(Command::Size { files })
}

/// `build`, `run` and `graph`: one example and the command's options.
fn parse_example_command(
    cmd: &str,
    mut args: impl Iterator<Item = String>,
) -> Result<Command, Error> {
    let mut example = None;
    let mut board = Board::Host;
    let mut release = false;
    let mut output = None;
    let mut regions = crate::graph::Regions::default();
    let mut launcher_args = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| Error::usage(format!("`{flag}` needs {what}")))
        };
        match flag.as_str() {
            "--board" => board = Board::parse(&value("a board name")?)?,
            "--release" if cmd != "graph" && inline.is_none() => release = true,
            "-o" | "--output" if cmd == "graph" => output = Some(PathBuf::from(value("a file")?)),
            "--regions" if cmd == "graph" => {
                let v = value("all, grouped or none")?;
                regions = crate::graph::Regions::parse(&v).ok_or_else(|| {
                    Error::usage(format!("`--regions` takes all, grouped or none, not `{v}`"))
                })?;
            }
            "--" if cmd == "run" => launcher_args.extend(args.by_ref()),
            "-h" | "--help" => return Ok(Command::Help),
            f if f.starts_with('-') => {
                return Err(Error::usage(format!(
                    "`{cmd}` does not take option `{arg}`"
                )));
            }
            _ if example.is_none() => example = Some(arg),
            _ => {
                return Err(Error::usage(format!(
                    "`{cmd}` takes one example, got a second: `{arg}`"
                )));
            }
        }
    }
    let Some(example) = example else {
        return Err(Error::usage(format!("`{cmd}` needs an example name")));
    };
    let build = BuildArgs {
        example,
        board,
        release,
    };
    Ok(match cmd {
        "build" => Command::Build(build),
        "run" => Command::Run {
            build,
            launcher_args,
        },
        _ => Command::Graph {
            example: build.example,
            board,
            output,
            regions,
        },
    })
}

/// `swap <example> <pd> <binary> [--release] [--control FIFO]`.
fn parse_swap(mut args: impl Iterator<Item = String>) -> Result<Command, Error> {
    let mut words = Vec::new();
    let (mut release, mut control) = (false, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--release" => release = true,
            "--control" => {
                let v = args
                    .next()
                    .ok_or_else(|| Error::usage("`--control` needs a FIFO"))?;
                control = Some(PathBuf::from(v));
            }
            "-h" | "--help" => return Ok(Command::Help),
            a if a.starts_with('-') => {
                return Err(Error::usage(format!("`swap` does not take option `{a}`")));
            }
            _ => words.push(arg),
        }
    }
    let [example, pd, binary]: [String; 3] = words
        .try_into()
        .map_err(|_| Error::usage("usage: swap <example> <pd> <binary>"))?;
    Ok(Command::Swap {
        example,
        pd,
        binary,
        release,
        control,
    })
}

/// `account <example> [--control FIFO] [--snapshot DIR]`.
fn parse_account(mut args: impl Iterator<Item = String>) -> Result<Command, Error> {
    let (mut example, mut control, mut snapshot) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--snapshot" => {
                let v = args
                    .next()
                    .ok_or_else(|| Error::usage("`--snapshot` needs a snapshot folder"))?;
                snapshot = Some(PathBuf::from(v));
            }
            "--control" => {
                let v = args
                    .next()
                    .ok_or_else(|| Error::usage("`--control` needs a FIFO"))?;
                control = Some(PathBuf::from(v));
            }
            "-h" | "--help" => return Ok(Command::Help),
            a if a.starts_with('-') => {
                return Err(Error::usage(format!(
                    "`account` does not take option `{a}`"
                )));
            }
            _ if example.is_none() => example = Some(arg),
            _ => {
                return Err(Error::usage(
                    "usage: account <example> [--control FIFO] [--snapshot DIR]",
                ));
            }
        }
    }
    let example = example.ok_or_else(|| {
        Error::usage("usage: account <example> [--control FIFO] [--snapshot DIR]")
    })?;
    Ok(Command::Account {
        example,
        control,
        snapshot,
    })
}

/// `bench insns [WORKLOAD...] [--json] [--units N] [--top N]`.
fn parse_bench(mut args: impl Iterator<Item = String>) -> Result<Command, Error> {
    match args.next().as_deref() {
        Some("insns") => {}
        Some("-h" | "--help") => return Ok(Command::Help),
        Some(other) => {
            return Err(Error::usage(format!(
                "unknown bench `{other}`; benches: insns"
            )));
        }
        None => return Err(Error::usage("`bench` needs a bench name: insns")),
    }
    let mut a = crate::insns::InsnsArgs::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut number = || -> Result<u64, Error> {
            let v = inline.clone().or_else(|| args.next());
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::usage(format!("`{flag}` needs a number")))
        };
        match flag.as_str() {
            "--json" if inline.is_none() => a.json = true,
            "--units" => a.units = Some(number()?),
            "--top" => a.top = usize::try_from(number()?).unwrap_or(usize::MAX),
            "-h" | "--help" => return Ok(Command::Help),
            f if f.starts_with('-') => {
                return Err(Error::usage(format!(
                    "`bench insns` does not take option `{arg}`"
                )));
            }
            _ => a.only.push(arg),
        }
    }
    Ok(Command::BenchInsns(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse, its error as the sentence the user sees.
    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().copied()).map_err(|e| e.to_string())
    }

    fn build(example: &str, release: bool) -> BuildArgs {
        BuildArgs {
            example: example.into(),
            board: Board::Host,
            release,
        }
    }

    #[test]
    fn guest_images() {
        assert_eq!(p(&["guest-images"]), Ok(Command::GuestImages));
        assert!(p(&["guest-images", "linux_vm"]).is_err());
    }

    #[test]
    fn build_and_run() {
        assert_eq!(
            p(&["build", "hello"]),
            Ok(Command::Build(build("hello", false)))
        );
        assert_eq!(
            p(&["build", "--release", "hello", "--board", "host"]),
            Ok(Command::Build(build("hello", true)))
        );
        assert_eq!(
            p(&["run", "hello", "--board=host", "--", "--restart", "-v"]),
            Ok(Command::Run {
                build: build("hello", false),
                launcher_args: vec!["--restart".into(), "-v".into()],
            })
        );
        assert_eq!(
            p(&["run", "hello"]),
            Ok(Command::Run {
                build: build("hello", false),
                launcher_args: vec![],
            })
        );
    }

    #[test]
    fn account() {
        assert_eq!(
            p(&["account", "echo_server"]),
            Ok(Command::Account {
                example: "echo_server".into(),
                control: None,
                snapshot: None,
            })
        );
        assert_eq!(
            p(&[
                "account",
                "--control",
                "/tmp/c.fifo",
                "fileio",
                "--snapshot",
                "s"
            ]),
            Ok(Command::Account {
                example: "fileio".into(),
                control: Some("/tmp/c.fifo".into()),
                snapshot: Some("s".into()),
            })
        );
        assert!(
            p(&["account"])
                .unwrap_err()
                .contains("usage: account <example>")
        );
        assert!(p(&["account", "a", "b"]).is_err());
        assert!(
            p(&["account", "a", "--release"])
                .unwrap_err()
                .contains("`--release`")
        );
        assert!(
            p(&["account", "a", "--control"])
                .unwrap_err()
                .contains("needs a FIFO")
        );
    }

    #[test]
    fn graph() {
        assert_eq!(
            p(&["graph", "hello", "-o", "x.svg"]),
            Ok(Command::Graph {
                example: "hello".into(),
                board: Board::Host,
                output: Some("x.svg".into()),
                regions: crate::graph::Regions::Grouped,
            })
        );
        assert_eq!(
            p(&["graph", "--board", "qemu_virt_aarch64", "hello"]),
            Ok(Command::Graph {
                example: "hello".into(),
                board: Board::QemuVirtAarch64,
                output: None,
                regions: crate::graph::Regions::Grouped,
            })
        );
        assert_eq!(
            p(&["graph", "hello", "--regions=all"]),
            Ok(Command::Graph {
                example: "hello".into(),
                board: Board::Host,
                output: None,
                regions: crate::graph::Regions::All,
            })
        );
        assert!(
            p(&["graph", "hello", "--regions", "some"])
                .unwrap_err()
                .to_string()
                .contains("all, grouped or none")
        );
    }

    #[test]
    fn bench_insns() {
        use crate::insns::InsnsArgs;
        assert_eq!(
            p(&["bench", "insns"]),
            Ok(Command::BenchInsns(InsnsArgs::default()))
        );
        assert_eq!(
            p(&[
                "bench",
                "insns",
                "net_rx",
                "--json",
                "--units=500",
                "--top",
                "5",
                "blk"
            ]),
            Ok(Command::BenchInsns(InsnsArgs {
                only: vec!["net_rx".into(), "blk".into()],
                json: true,
                units: Some(500),
                top: 5,
            }))
        );
        let err = |args: &[&str]| p(args).unwrap_err().to_string();
        assert_eq!(err(&["bench"]), "`bench` needs a bench name: insns");
        assert_eq!(
            err(&["bench", "speed"]),
            "unknown bench `speed`; benches: insns"
        );
        assert_eq!(
            err(&["bench", "insns", "--units", "x"]),
            "`--units` needs a number"
        );
        assert_eq!(
            err(&["bench", "insns", "--release"]),
            "`bench insns` does not take option `--release`"
        );
        assert!(USAGE.contains("bench insns"));
    }

    #[test]
    fn help() {
        assert_eq!(p(&["help"]), Ok(Command::Help));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["run", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |args: &[&str]| p(args).unwrap_err().to_string();
        assert_eq!(err(&[]), "no command given");
        assert!(err(&["frobnicate"]).contains("commands: build, run, graph, bench"));
        assert_eq!(err(&["build"]), "`build` needs an example name");
        assert_eq!(
            err(&["build", "a", "b"]),
            "`build` takes one example, got a second: `b`"
        );
        assert_eq!(
            err(&["build", "hello", "--board", "pc"]),
            "unknown board `pc`; known boards: host, qemu_virt_aarch64"
        );
        assert_eq!(
            err(&["build", "hello", "--board"]),
            "`--board` needs a board name"
        );
        assert_eq!(
            err(&["build", "hello", "--", "x"]),
            "`build` does not take option `--`"
        );
        assert_eq!(
            err(&["build", "hello", "-o", "x"]),
            "`build` does not take option `-o`"
        );
        assert_eq!(
            err(&["graph", "hello", "--release"]),
            "`graph` does not take option `--release`"
        );
    }

    #[test]
    fn qemu_board_builds_for_aarch64_under_sel4() {
        assert_eq!(
            Board::parse("qemu_virt_aarch64").ok(),
            Some(Board::QemuVirtAarch64)
        );
        assert_eq!(
            Board::QemuVirtAarch64.target(),
            Some("aarch64-unknown-none")
        );
        assert!(Board::QemuVirtAarch64.is_sel4());
        assert_eq!(Board::Host.target(), None);
        assert!(!Board::Host.is_sel4());
        assert!(USAGE.contains("MICROKIT_SDK"));
    }

    #[test]
    fn help_names_the_examples_variables_and_launcher_options() {
        let h = super::help(&["echo_server".into(), "hello".into()]);
        assert!(h.starts_with(USAGE), "{h}");
        assert!(h.contains("\n  echo_server, hello\n"), "{h}");
        for word in [
            "LIONS_NET=",
            "LIONS_NET_FORWARD=",
            "LIONS_TAP=",
            "LIONS_HOST_BLK_IMAGE=",
            "MICROKIT_SDK=",
            "--restart",
            "--max-restarts N",
            "--trace",
            "--stats",
            "--no-rt",
            "--search-path DIR",
        ] {
            assert!(h.contains(word), "help lacks {word}:\n{h}");
        }
        assert!(super::help(&[]).contains("(none found"));
    }
}
