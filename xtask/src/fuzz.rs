// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask fuzz <target>|all|list [--seconds N] [--seed S]`: run a seeded attacker (the
//! `attack` test of a crate, built on `lions_os::sim::attack`) for N seconds with fresh seeds in
//! a release build.
//!
//! 1. `cargo test --release -p <package> --test attack -- --exact <target> --include-ignored
//!    --nocapture` (release code with overflow checks and debug assertions, built in
//!    `target/fuzz/build/`), with
//!    `LIONS_ATTACK_SECONDS=N`, `LIONS_ATTACK_SEED=S` (fresh from the clock unless given) and
//!    `LIONS_ATTACK_OUT=target/fuzz/<target>/` in its environment (ignored targets, those pinned
//!    on a known defect, run too).
//! 2. The attacker runs cases `S, S+1, …` until the time is up and prints its totals (cases,
//!    actions, seeds). On a failure it shrinks the case to a minimal list of actions, writes the
//!    seed, the failure, the kept actions and a one-line replay command to
//!    `target/fuzz/<target>/<target>-<seed>.txt`, and fails; `fuzz` then exits non-zero naming
//!    the file.

use crate::{Error, target_dir};
use std::path::Path;
use std::process::Command as Process;
use std::time::{SystemTime, UNIX_EPOCH};

/// Every attack target: (name, package). The name is also the `#[test]` in the package's
/// `tests/attack.rs`.
pub const TARGETS: &[(&str, &str)] = &[
    ("blk_virt", "lions-blk"),
    ("partition", "lions-blk"),
    ("i2c_virt", "lions-i2c"),
    ("serial_tx_virt", "lions-serial"),
    ("serial_rx_virt", "lions-serial"),
    ("net_rx_virt", "lions-net"),
    ("net_rx_virt_unicast", "lions-net"),
    ("net_tx_virt", "lions-net"),
    ("net_tx_virt_forging_driver", "lions-net"),
    ("net_copy", "lions-net"),
    ("net_arp", "lions-net"),
    ("fs_fat", "lions-fs"),
    ("fs_fat_boot_sector", "lions-fs"),
    ("queue", "lions-queue"),
];

/// What `fuzz` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzArgs {
    /// A target name, `all`, or `list`.
    pub target: String,
    /// Seconds per target.
    pub seconds: u64,
    /// First seed (fresh from the clock if unset).
    pub seed: Option<u64>,
}

/// Parse the arguments after `fuzz`.
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<crate::cli::Command, Error> {
    let mut a = FuzzArgs {
        target: String::new(),
        seconds: 60,
        seed: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut number = || -> Result<u64, Error> {
            let v = inline.clone().or_else(|| args.next()).unwrap_or_default();
            let n = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.parse().ok(),
            };
            n.ok_or_else(|| Error::usage(format!("`{flag}` needs a number")))
        };
        match flag.as_str() {
            "--seconds" => a.seconds = number()?,
            "--seed" => a.seed = Some(number()?),
            "-h" | "--help" => return Ok(crate::cli::Command::Help),
            f if f.starts_with('-') => {
                return Err(Error::usage(format!("`fuzz` does not take option `{arg}`")));
            }
            _ if a.target.is_empty() => a.target = arg,
            _ => {
                return Err(Error::usage(format!(
                    "`fuzz` takes one target, got `{arg}` too"
                )));
            }
        }
    }
    if a.target.is_empty() {
        return Err(Error::usage("`fuzz` needs a target (or `list`, `all`)"));
    }
    if !matches!(a.target.as_str(), "all" | "list") && !TARGETS.iter().any(|t| t.0 == a.target) {
        return Err(Error::usage(format!(
            "unknown fuzz target `{}`; targets: {}",
            a.target,
            names()
        )));
    }
    Ok(crate::cli::Command::Fuzz(a))
}

fn names() -> String {
    TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
}

/// Run the target(s); an error names the reproducer of the first failure.
pub fn run(root: &Path, a: &FuzzArgs) -> Result<(), Error> {
    if a.target == "list" {
        for (name, package) in TARGETS {
            println!("{name:16} {package}");
        }
        return Ok(());
    }
    let seed = a.seed.unwrap_or_else(fresh_seed);
    let mut failed = Vec::new();
    for &(name, package) in TARGETS
        .iter()
        .filter(|t| a.target == "all" || t.0 == a.target)
    {
        let out = target_dir(root).join("fuzz").join(name);
        eprintln!(
            "fuzz {name}: {} s from seed {seed:#x} (reproducers in {})",
            a.seconds,
            out.display()
        );
        let status = Process::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root)
            .args([
                "test",
                "--release",
                "-p",
                package,
                "--test",
                "attack",
                "--target-dir",
            ])
            .arg(target_dir(root).join("fuzz").join("build"))
            .arg("--")
            .args(["--exact", name, "--include-ignored", "--nocapture"])
            // Optimised, but with overflow checks and debug assertions (in the dependencies too,
            // e.g. the FAT library): an overflow is a finding, not a silent wrong value.
            .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
            .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
            .env("LIONS_ATTACK_SECONDS", a.seconds.to_string())
            .env("LIONS_ATTACK_SEED", format!("{seed:#x}"))
            .env("LIONS_ATTACK_OUT", &out)
            .env_remove("LIONS_ATTACK_KEEP")
            .env_remove("LIONS_ATTACK_CASES")
            .status()
            .map_err(|e| Error::start(format!("cargo test -p {package}"), e))?;
        if !status.success() {
            failed.push(format!("{name} (see {})", out.display()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "fuzz",
            format!("failures in {}", failed.join(", ")),
        ))
    }
}

/// A seed from the clock and the process id.
fn fresh_seed() -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs() ^ u64::from(d.subsec_nanos()).rotate_left(40)
    });
    t ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<FuzzArgs, Error> {
        match parse(s.split_whitespace().map(String::from))? {
            crate::cli::Command::Fuzz(a) => Ok(a),
            other => Err(Error::usage(format!("{other:?}"))),
        }
    }

    #[test]
    fn parses_targets_and_options() {
        let a = parse_str("blk_virt --seconds 5 --seed 0x10").unwrap();
        assert_eq!(
            a,
            FuzzArgs {
                target: "blk_virt".into(),
                seconds: 5,
                seed: Some(16),
            }
        );
        assert_eq!(parse_str("all --seconds=2").unwrap().seconds, 2);
        assert!(
            parse_str("nope")
                .unwrap_err()
                .to_string()
                .contains("blk_virt")
        );
        assert!(parse_str("queue --seconds x").is_err());
        assert!(parse_str("").is_err());
    }

    #[test]
    fn every_target_has_its_attack_test() {
        let root = crate::workspace_root();
        for (name, package) in TARGETS {
            let dir = package.strip_prefix("lions-").unwrap();
            let file = root.join(format!("crates/lions-{dir}/tests/attack.rs"));
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.contains(&format!("fn {name}()")),
                "{name} in {}",
                file.display()
            );
        }
    }
}
