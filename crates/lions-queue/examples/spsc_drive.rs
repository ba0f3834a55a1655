// SPDX-License-Identifier: BSD-2-Clause
//! The workloads of `benches/spsc.rs` (`spsc_work/mod.rs`) as a plain program, for callgrind and for
//! load-robust ratios against rtrb (ratio = rtrb's time / ours: at or above 1.0, ours is as fast).
//!
//! - `spsc_drive -- os|rs|ob|rb|oslice`: 1000 one-thread rounds of one mode (ours/rtrb
//!   single/batched; `oslice` = ours batched through `push_slice`/`pop_slice`), for
//!   `valgrind --tool=callgrind` (take the inclusive cost of the mode's function / 1000).
//! - `spsc_drive -- one [REPS]`: REPS (200) repetitions of 500 rounds of every one-thread mode,
//!   interleaved; prints the minimum and median ns per round of each and the ratios.
//! - `spsc_drive -- two [REPS]`: REPS (101) pinned two-thread runs of 2^16 items of every mode,
//!   interleaved (ours single, rtrb single, ours batched, rtrb batched, ...); prints the minimum and
//!   median ns per item and the ratios.
//! - Both interleaved modes also print the paired ratio: per repetition, rtrb's time over ours
//!   in that repetition (neighbours in time), its median and quartiles over the repetitions.
//! - `spsc_drive -- tos|trs|tob|trb [REPS]`: REPS (200) pinned runs of one two-thread mode (ours/rtrb
//!   single/batched), for `perf record -e cpu-clock`.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "spsc_work/mod.rs"]
mod spsc_work;

use spsc_work::*;
use std::time::Instant;

/// Minimum and median of `v` (sorted in place).
fn min_med(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

/// The median and the quartiles of `rtrb[i] / ours[i]` over the repetitions: each repetition's
/// two runs are neighbours in time, so a load swing between repetitions cancels in the ratio.
fn paired(ours: &[f64], rtrb: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = ours.iter().zip(rtrb).map(|(o, t)| t / o).collect();
    r.sort_by(f64::total_cmp);
    // Nearest rank: `(len - 1) * f` for f in [0, 1] is an index of `r`, integer arithmetic.
    let q = |num: usize, den: usize| r[((r.len() - 1) * num + den / 2) / den];
    (q(1, 4), q(1, 2), q(3, 4))
}

fn report(names: &[&str], times: &mut [Vec<f64>], unit: &str) {
    for pair in [(0, 1), (2, 3)] {
        let (lo, med, hi) = paired(&times[pair.0], &times[pair.1]);
        println!(
            "{:>14} vs {}: paired ratio (rtrb / ours, same repetition) median {med:.2}x, \
             quartiles {lo:.2}-{hi:.2}x",
            names[pair.0], names[pair.1]
        );
    }
    let stats: Vec<(f64, f64)> = times.iter_mut().map(|v| min_med(v)).collect();
    for (name, (min, med)) in names.iter().zip(&stats) {
        println!("{name:>14}: min {min:8.2} median {med:8.2} {unit}");
    }
    // Pairs (ours, rtrb) by position: 0/1, 2/3.
    for pair in [(0, 1), (2, 3)] {
        let (o, r) = (stats[pair.0], stats[pair.1]);
        println!(
            "{:>14} vs {}: ratio (rtrb time / ours) min {:.2}x median {:.2}x",
            names[pair.0],
            names[pair.1],
            r.0 / o.0,
            r.1 / o.1
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let reps: Option<usize> = args.next().and_then(|a| a.parse().ok());
    let mut s = ours();
    let (mut p, mut c, _) = s.split().unwrap();
    let (mut rp, mut rc) = rtrb::RingBuffer::<u64>::new(CAP);
    let mut t = 0;
    match which.as_str() {
        "one" => {
            pin(1);
            let names = [
                "ours single",
                "rtrb single",
                "ours batched",
                "rtrb batched",
                "ours slice",
            ];
            let mut times = vec![Vec::new(); names.len()];
            for _ in 0..reps.unwrap_or(200) {
                for (k, v) in times.iter_mut().enumerate() {
                    let start = Instant::now();
                    for _ in 0..500 {
                        t += match k {
                            0 => ours_single(&mut p, &mut c),
                            1 => rtrb_single(&mut rp, &mut rc),
                            2 => ours_batched(&mut p, &mut c),
                            3 => rtrb_batched(&mut rp, &mut rc),
                            _ => ours_batched_slice(&mut p, &mut c),
                        };
                    }
                    v.push(start.elapsed().as_nanos() as f64 / 500.0);
                }
            }
            report(&names, &mut times, "ns/round of 1024 items");
            println!("(checksum {t})");
        }
        "two" => {
            if !pin(1) || !pin(0) {
                println!("warning: could not pin to CPUs 0 and 1; runs are not pinned");
            }
            let names = ["ours single", "rtrb single", "ours batched", "rtrb batched"];
            let mut times = vec![Vec::new(); names.len()];
            for _ in 0..reps.unwrap_or(101) {
                for (k, v) in times.iter_mut().enumerate() {
                    let d = match k {
                        0 => two_ours_single(),
                        1 => two_rtrb_single(),
                        2 => two_ours_batched(),
                        _ => two_rtrb_batched(),
                    };
                    v.push(d.as_nanos() as f64 / STREAM as f64);
                }
            }
            report(&names, &mut times, "ns/item");
        }
        mode @ ("tos" | "trs" | "tob" | "trb") => {
            // One two-thread workload, REPS (200) times (for `perf record`).
            let run = match mode {
                "tos" => two_ours_single,
                "trs" => two_rtrb_single,
                "tob" => two_ours_batched,
                _ => two_rtrb_batched,
            };
            let mut v: Vec<f64> = (0..reps.unwrap_or(200))
                .map(|_| run().as_nanos() as f64 / STREAM as f64)
                .collect();
            let (min, med) = min_med(&mut v);
            println!("{mode}: min {min:.2} median {med:.2} ns/item");
        }
        mode => {
            for _ in 0..1000 {
                t += match mode {
                    "ob" => ours_batched(&mut p, &mut c),
                    "oslice" => ours_batched_slice(&mut p, &mut c),
                    "os" => ours_single(&mut p, &mut c),
                    "rb" => rtrb_batched(&mut rp, &mut rc),
                    "rs" => rtrb_single(&mut rp, &mut rc),
                    _ => panic!("os|rs|ob|rb|oslice|one|two|tos|trs|tob|trb [REPS]"),
                };
            }
            println!("{t}");
        }
    }
}
