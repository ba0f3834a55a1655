// SPDX-License-Identifier: BSD-2-Clause
//! `lions-host`: run a Microkit system description on Linux (see the `lions_host` crate docs).

use lions_host::{Options, run};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: lions-host [--restart] [--max-restarts N] [--trace] [--stats] [--no-rt] \
[--search-path DIR]... <file.system>";

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
                None => return usage("--max-restarts needs a number"),
            },
            Some("--search-path") => match args.next() {
                Some(d) => options.search_path.push(PathBuf::from(d)),
                None => return usage("--search-path needs a directory"),
            },
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some(a) if a.starts_with('-') => return usage(&format!("unknown option {a}")),
            _ if system.is_some() => return usage("only one system description"),
            _ => system = Some(PathBuf::from(arg)),
        }
    }
    let Some(system) = system else {
        return usage("no system description given");
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
    eprintln!("lions-host: {problem}\n{USAGE}");
    ExitCode::from(2)
}
