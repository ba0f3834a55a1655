// SPDX-License-Identifier: BSD-2-Clause
//! `lions-host`: run a Microkit system description on Linux (see the `lions_host` crate docs).

use lions_host::{Options, run};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: lions-host [--restart] [--max-restarts N] [--trace] [--stats] [--no-rt] \
[--control FIFO] [--search-path DIR]... <file.system>";

/// `--help`: what the launcher does, every option, the signals and the exit status.
const HELP: &str = "\
lions-host: run a seL4 Microkit system description (.system, as sdfgen writes it) on Linux, one
process per protection domain. Memory regions become shared memory mapped at the description's
vaddrs with its rights; channels and PPCs follow seL4 semantics, and a PD holds only the channels
the description gives it. PD binaries are built with lions-os's `host` feature; `cargo xtask run
<example>` builds and assembles a system and starts this launcher on it.

options:
  --search-path DIR   where program_image paths are looked up, in order, before the directory of
                      the .system file (repeatable); NAME.elf also matches NAME
  --restart           re-spawn a PD that faulted; its memory regions keep their contents
  --max-restarts N    restarts per PD at most (default 3)
  --trace             report every start, exit and scheduling decision on stderr
  --stats             print per-PD counters (notifications, PPCs, IRQs, restarts) at exit
  --no-rt             do not ask for real-time priorities (SCHED_FIFO) for the PDs
  --control FIFO      create FIFO and read operator commands from it, one per line:
                        swap <pd> <image>   stop <pd> and start <image> in its place (live
                                            policy swap: e.g. another net_virt_tx build)
                        restart <pd>        stop <pd> and start it again
                        snapshot <dir>      stop every PD, copy every memory region into the
                                            new folder <dir> (listed in <dir>/index), continue
                                            them (cargo xtask account reads it)
                      the PD restarted keeps its regions and rebuilds its state from them
  -h, --help          this text

Ctrl-C or SIGTERM stops the whole system (SIGTERM to every PD, SIGKILL after a second).
exit status: 0 stopped by a signal or every PD exited normally; 1 a PD faulted and was not
restarted; 2 a bad system description, or the system could not start (a missing image, a region
that cannot be mapped, a PD that failed to start), with the PD named on stderr.";

fn main() -> ExitCode {
    let mut options = Options::default();
    let mut system: Option<PathBuf> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--restart") => options.restart = true,
            Some("--trace") => options.trace = true,
            Some("--stats") => options.stats = true,
            Some("--no-rt") => options.realtime = false,
            Some("--max-restarts") => match args.next().and_then(|n| n.to_str()?.parse().ok()) {
                Some(n) => options.max_restarts = n,
                None => return usage("--max-restarts needs a number of restarts per PD (e.g. 3)"),
            },
            Some("--control") => match args.next() {
                Some(p) => options.control = Some(PathBuf::from(p)),
                None => return usage("--control needs the path of the FIFO to create"),
            },
            Some("--search-path") => match args.next() {
                Some(d) => options.search_path.push(PathBuf::from(d)),
                None => {
                    return usage("--search-path needs a directory to look up program images in");
                }
            },
            Some("-h" | "--help") => {
                println!("{USAGE}\n\n{HELP}");
                return ExitCode::SUCCESS;
            }
            Some(a) if a.starts_with('-') => return usage(&format!("unknown option {a}")),
            _ if let Some(first) = &system => {
                return usage(&format!(
                    "one system description at a time: got {} and {}",
                    first.display(),
                    PathBuf::from(arg).display()
                ));
            }
            _ => system = Some(PathBuf::from(arg)),
        }
    }
    let Some(system) = system else {
        return usage("no system description given: name the .system file to run");
    };
    // Images: the first --search-path (or the description's directory), then the rest.
    let images_dir = if options.search_path.is_empty() {
        system
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    } else {
        options.search_path.remove(0)
    };
    match run(&system, &images_dir, &options) {
        Ok(report) => ExitCode::from(report.exit_code()),
        Err(e) => {
            eprintln!("lions-host: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("lions-host: {problem}\n{USAGE}\n(`lions-host --help` explains each option)");
    ExitCode::from(2)
}
