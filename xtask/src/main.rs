// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask build|run|graph <example>`: see the [`xtask`] library docs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cmd = match xtask::cli::parse(std::env::args().skip(1)) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("xtask: {e}\n\n{}", xtask::cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match xtask::tasks::execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ xtask::Error::Usage(_)) => {
            eprintln!("xtask: {e}\n\n{}", xtask::cli::USAGE);
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
