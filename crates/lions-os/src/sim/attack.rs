// SPDX-License-Identifier: BSD-2-Clause
//! A seeded attack engine for adversarial subsystem tests: generate a list of actions from a
//! seed, run it, and on a failure shrink the list to a minimal reproducer that replays from the
//! seed and the indices of the kept actions.
//!
//! ## Protocol
//!
//! - A target is two functions: `generate(&mut Rng) -> Vec<A>` (the whole run of one case,
//!   malicious peer writes interleaved with well-behaved clients' work) and
//!   `execute(&[A]) -> Result<(), String>` (build a fresh system, run the actions, check the
//!   invariants after every step and liveness at the end). A panic of `execute` counts as a
//!   failure like an `Err` (the harness itself must not panic on a correct system).
//! - Case `i` of a run uses seed `base + i`; its actions come from `Rng::new(seed)` only, so a
//!   seed alone regenerates them. A shrunk reproducer is the seed plus the indices of the actions
//!   kept (the others are skipped).
//! - The budget comes from the environment: `LIONS_ATTACK_CASES` (cases, default per target),
//!   `LIONS_ATTACK_SECONDS` (run cases until that many seconds have passed instead; for
//!   `cargo xtask fuzz`), `LIONS_ATTACK_SEED` (the first case's seed, default per target),
//!   `LIONS_ATTACK_KEEP` (replay: a comma list of action indices to keep, `none` for none, with
//!   one case),
//!   `LIONS_ATTACK_OUT` (a folder where a failure's reproducer is written).
//! - A failure is shrunk greedily (remove chunks of halving size while the case still fails, up
//!   to [`SHRINK_RUNS`] runs and [`SHRINK_TIME`]), written to `LIONS_ATTACK_OUT/<name>-<seed>.txt`
//!   when set, and reported by a panic whose message holds the one-line replay command.
//! - At the end of a run one line goes to stderr: `attack <name>: <cases> cases, <actions>
//!   actions, seeds <first>..=<last>`.
//!
//! The engine uses only `std`, so crates without a `lions-os` dependency include this file by
//! path.
// Seeds, counts and indices are u64 on a 64-bit host; the rest is test output.
#![allow(clippy::print_stderr, clippy::cast_possible_truncation)]

use std::fmt::{Debug, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Most executions spent shrinking one failure.
pub const SHRINK_RUNS: usize = 4000;
/// Most time spent shrinking one failure (a hanging case costs its target's timeout per run).
pub const SHRINK_TIME: Duration = Duration::from_secs(120);

/// A small, fast, seeded generator (xorshift64* over a splitmix64-scrambled seed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.u64() % n }
    }

    /// An index into a collection of `n` (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// A "nasty" 64-bit value: mostly small or near a boundary (0, 1, powers of two and their
    /// neighbours, the top of the u16/u32/u64 ranges), sometimes fully random.
    pub fn nasty(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(16),
            1 => {
                let p = 1u64 << self.below(64);
                p.wrapping_add(self.below(3)).wrapping_sub(1)
            }
            2 => u64::from(u16::MAX) - self.below(4),
            3 => u64::from(u32::MAX) - self.below(4),
            4 => u64::MAX - self.below(4),
            _ => self.u64(),
        }
    }
}

/// How many cases to run, from which seed: the environment over a target's defaults.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Cases to run (ignored while `seconds` is set).
    pub cases: u64,
    /// Run cases until this much time has passed.
    pub seconds: Option<u64>,
    /// Seed of the first case.
    pub seed: u64,
    /// Replay: the action indices to keep.
    pub keep: Option<Vec<usize>>,
    /// Where to write a reproducer.
    pub out: Option<std::path::PathBuf>,
}

impl Budget {
    /// `default_cases` cases from a seed derived from `name`, overridden by the environment.
    pub fn from_env(name: &str, default_cases: u64) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str| var(k).and_then(|v| parse_u64(&v));
        let keep = var("LIONS_ATTACK_KEEP").map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse::<usize>().ok())
                .collect::<Vec<_>>()
        });
        let default_seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Self {
            cases: if keep.is_some() {
                1
            } else {
                num("LIONS_ATTACK_CASES").unwrap_or(default_cases)
            },
            seconds: if keep.is_some() {
                None
            } else {
                num("LIONS_ATTACK_SECONDS")
            },
            seed: num("LIONS_ATTACK_SEED").unwrap_or(default_seed),
            keep,
            out: var("LIONS_ATTACK_OUT").map(Into::into),
        }
    }
}

fn parse_u64(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Totals of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Cases run.
    pub cases: u64,
    /// Actions executed over all cases.
    pub actions: u64,
}

/// One attack target: its name (as `cargo xtask fuzz` knows it), its crate and test binary (for
/// the replay command), and its default budget.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Target name (also the `#[test]` function's name).
    pub name: &'static str,
    /// The package whose `attack` test holds it.
    pub package: &'static str,
    /// Cases a plain `cargo test` runs.
    pub default_cases: u64,
}

impl Target {
    /// Run the budget from the environment; panic with a reproducer on the first failure.
    pub fn run<A: Debug + Clone>(
        &self,
        generate: impl Fn(&mut Rng) -> Vec<A>,
        execute: impl Fn(&[A]) -> Result<(), String>,
    ) -> Totals {
        let budget = Budget::from_env(self.name, self.default_cases);
        let started = Instant::now();
        let mut t = Totals {
            cases: 0,
            actions: 0,
        };
        loop {
            let more = match budget.seconds {
                Some(s) => started.elapsed() < Duration::from_secs(s),
                None => t.cases < budget.cases,
            };
            if !more {
                break;
            }
            let seed = budget.seed.wrapping_add(t.cases);
            let all = generate(&mut Rng::new(seed));
            let kept: Vec<usize> = match &budget.keep {
                Some(k) => k.iter().copied().filter(|&i| i < all.len()).collect(),
                None => (0..all.len()).collect(),
            };
            t.cases += 1;
            t.actions += kept.len() as u64;
            if let Err(why) = attempt(&all, &kept, &execute) {
                self.fail(&budget, seed, &all, kept, why, &execute);
            }
        }
        eprintln!(
            "attack {}: {} cases, {} actions, seeds {:#x}..={:#x}",
            self.name,
            t.cases,
            t.actions,
            budget.seed,
            budget.seed.wrapping_add(t.cases.saturating_sub(1))
        );
        t
    }

    fn fail<A: Debug + Clone>(
        &self,
        budget: &Budget,
        seed: u64,
        all: &[A],
        kept: Vec<usize>,
        why: String,
        execute: &impl Fn(&[A]) -> Result<(), String>,
    ) -> ! {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let (kept, why) = shrink(all, kept, why, execute);
        std::panic::set_hook(hook);
        let mut list: Vec<String> = kept.iter().map(ToString::to_string).collect();
        if list.is_empty() {
            list.push("none".into());
        }
        let replay = format!(
            "LIONS_ATTACK_SEED={seed:#x} LIONS_ATTACK_KEEP={} cargo test -p {} --test attack -- \
             --exact {} --include-ignored --nocapture",
            list.join(","),
            self.package,
            self.name
        );
        let mut text = format!(
            "target: {}\nseed: {seed:#x}\nfailure: {why}\nreplay: {replay}\nactions ({} of {}):\n",
            self.name,
            kept.len(),
            all.len()
        );
        for &i in &kept {
            let _ = writeln!(text, "  [{i}] {:?}", all[i]);
        }
        if let Some(dir) = &budget.out {
            let _ = std::fs::create_dir_all(dir);
            let file = dir.join(format!("{}-{seed:#x}.txt", self.name));
            if std::fs::write(&file, &text).is_ok() {
                eprintln!(
                    "attack {}: reproducer written to {}",
                    self.name,
                    file.display()
                );
            }
        }
        eprintln!("{text}");
        panic!("attack {} failed: {why}\nreplay: {replay}", self.name);
    }
}

/// Run the actions `kept` of `all`; a panic is a failure.
fn attempt<A: Clone>(
    all: &[A],
    kept: &[usize],
    execute: &impl Fn(&[A]) -> Result<(), String>,
) -> Result<(), String> {
    let list: Vec<A> = kept.iter().map(|&i| all[i].clone()).collect();
    catch_unwind(AssertUnwindSafe(|| execute(&list))).unwrap_or_else(|p| {
        Err(p
            .downcast_ref::<&str>()
            .map(|s| format!("panic: {s}"))
            .or_else(|| p.downcast_ref::<String>().map(|s| format!("panic: {s}")))
            .unwrap_or_else(|| "panic".into()))
    })
}

/// Greedy shrinking: remove chunks of halving size while the case still fails.
fn shrink<A: Debug + Clone>(
    all: &[A],
    mut kept: Vec<usize>,
    mut why: String,
    execute: &impl Fn(&[A]) -> Result<(), String>,
) -> (Vec<usize>, String) {
    let mut runs = 0;
    let started = Instant::now();
    let mut chunk = kept.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < kept.len() && runs < SHRINK_RUNS && started.elapsed() < SHRINK_TIME {
            let trial: Vec<usize> = kept[..i]
                .iter()
                .chain(&kept[(i + chunk).min(kept.len())..])
                .copied()
                .collect();
            runs += 1;
            match attempt(all, &trial, execute) {
                Err(w) => {
                    kept = trial;
                    why = w;
                }
                Ok(()) => i += chunk,
            }
        }
        if chunk == 1 || runs >= SHRINK_RUNS || started.elapsed() >= SHRINK_TIME {
            return (kept, why);
        }
        chunk = chunk.div_ceil(2);
    }
}
