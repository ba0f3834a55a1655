// SPDX-License-Identifier: BSD-2-Clause
//! # lions-bench: instruction-count workloads
//!
//! Deterministic, single-core workloads that drive one real component at a time (net Rx virt,
//! copier, Tx virt; serial Tx and Rx virt; blk virt; I2C virt) through its real `Handler`, with the bench
//! playing every peer in plain heap memory laid out as the sDDF configs say. `cargo xtask bench
//! insns` runs each workload under callgrind and divides the instructions counted inside the
//! component (see [`os`]) by the units moved.
//!
//! `lions-bench list` prints the workloads; `lions-bench run <workload> [--units N] [--warmup N]`
//! runs one and prints `units <n>` and `notify <channel> <count>` lines for the measured part.
//! Every workload checks what it moved (every frame, line, character or request reaches the right
//! peer, in order, and the counts match) and panics otherwise.
//!
//! lions-os is built without `std` here (`cargo build -p lions-bench --release`), so the
//! components run on the same runtime path as on seL4.
// A bench for 64-bit Linux hosts: its casts are of small counts, offsets and channel ids.
#![allow(clippy::cast_possible_truncation)]

mod blk;
mod i2c;
mod net;
mod os;
mod serial;

use std::process::ExitCode;

/// One workload: a component, a batching, a unit.
pub struct Workload {
    /// Name on the command line.
    pub name: &'static str,
    /// The measured wrapper (callgrind `--toggle-collect`).
    pub symbol: &'static str,
    /// Component, as the table shows it.
    pub component: &'static str,
    /// Batching, as the table shows it.
    pub batching: &'static str,
    /// What one unit is.
    pub unit: &'static str,
    /// Units measured by default.
    pub units: u64,
    /// Run it: (shim, units, warm-up units) → units measured.
    pub run: fn(&os::Shim, u64, u64) -> u64,
}

/// Every workload, in table order.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "net_rx_32",
        symbol: "insns_net_virt_rx",
        component: "net Rx virt",
        batching: "32 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_rx(s, u, w, 32),
    },
    Workload {
        name: "net_rx_1",
        symbol: "insns_net_virt_rx",
        component: "net Rx virt",
        batching: "1 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_rx(s, u, w, 1),
    },
    Workload {
        name: "net_copy_32",
        symbol: "insns_net_copier",
        component: "net copier",
        batching: "32 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::copier(s, u, w, 32),
    },
    Workload {
        name: "net_copy_1",
        symbol: "insns_net_copier",
        component: "net copier",
        batching: "1 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::copier(s, u, w, 1),
    },
    Workload {
        name: "net_tx_rr_32",
        symbol: "insns_net_virt_tx_rr",
        component: "net Tx virt, round-robin",
        batching: "32 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_tx_rr(s, u, w, 32),
    },
    Workload {
        name: "net_tx_rr_1",
        symbol: "insns_net_virt_tx_rr",
        component: "net Tx virt, round-robin",
        batching: "1 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_tx_rr(s, u, w, 1),
    },
    Workload {
        name: "net_tx_inorder_32",
        symbol: "insns_net_virt_tx_inorder",
        component: "net Tx virt, in order",
        batching: "32 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_tx_inorder(s, u, w, 32),
    },
    Workload {
        name: "net_tx_inorder_1",
        symbol: "insns_net_virt_tx_inorder",
        component: "net Tx virt, in order",
        batching: "1 per notify",
        unit: "frame",
        units: 100_000,
        run: |s, u, w| net::virt_tx_inorder(s, u, w, 1),
    },
    Workload {
        name: "serial_tx_1",
        symbol: "insns_serial_virt_tx",
        component: "serial Tx virt, 1 client",
        batching: "1 line per notify",
        unit: "64-byte line",
        units: 100_000,
        run: |s, u, w| serial::virt_tx(s, u, w, 1, 1),
    },
    Workload {
        name: "serial_tx_32",
        symbol: "insns_serial_virt_tx",
        component: "serial Tx virt, 1 client",
        batching: "32 lines per notify",
        unit: "64-byte line",
        units: 100_000,
        run: |s, u, w| serial::virt_tx(s, u, w, 1, 32),
    },
    Workload {
        name: "serial_tx_colour",
        symbol: "insns_serial_virt_tx",
        component: "serial Tx virt, 2 clients, colour",
        batching: "1 line per notify",
        unit: "64-byte line",
        units: 100_000,
        run: |s, u, w| serial::virt_tx(s, u, w, 2, 1),
    },
    Workload {
        name: "serial_rx_1",
        symbol: "insns_serial_virt_rx",
        component: "serial Rx virt",
        batching: "1 char per notify",
        unit: "character",
        units: 100_000,
        run: |s, u, w| serial::virt_rx(s, u, w, 1),
    },
    Workload {
        name: "serial_rx_32",
        symbol: "insns_serial_virt_rx",
        component: "serial Rx virt",
        batching: "32 chars per notify",
        unit: "character",
        units: 200_000,
        run: |s, u, w| serial::virt_rx(s, u, w, 32),
    },
    Workload {
        name: "blk_32",
        symbol: "insns_blk_virt",
        component: "blk virt, 2 partitioned clients",
        batching: "32 requests per notify",
        unit: "4 KiB request",
        units: 100_000,
        run: |s, u, w| blk::virt(s, u, w, 32),
    },
    Workload {
        name: "blk_1",
        symbol: "insns_blk_virt",
        component: "blk virt, 2 partitioned clients",
        batching: "1 request per notify",
        unit: "4 KiB request",
        units: 100_000,
        run: |s, u, w| blk::virt(s, u, w, 1),
    },
    Workload {
        name: "i2c_32",
        symbol: "insns_i2c_virt",
        component: "I2C virt, 2 clients",
        batching: "32 transactions per round",
        unit: "transaction",
        units: 100_000,
        run: |s, u, w| i2c::virt(s, u, w, 32),
    },
    Workload {
        name: "i2c_1",
        symbol: "insns_i2c_virt",
        component: "I2C virt, 2 clients",
        batching: "1 transaction per notify",
        unit: "transaction",
        units: 100_000,
        run: |s, u, w| i2c::virt(s, u, w, 1),
    },
];

/// Serialises workloads: without `std`, lions-os keeps the installed backend in one static.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Units moved in the measured part.
    pub units: u64,
    /// Notifications the component sent in the measured part, per channel (non-zero only).
    pub notifications: Vec<(u8, u64)>,
}

/// Run workload `w`: `warmup` units, then `units` measured ones.
pub fn run(w: &Workload, units: u64, warmup: u64) -> Outcome {
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let shim = os::Shim::default();
    let units = lions_os::runtime::with_backend(&shim, || (w.run)(&shim, units, warmup));
    Outcome {
        units,
        notifications: (0..64)
            .map(|ch| (ch, shim.count(ch)))
            .filter(|&(_, n)| n > 0)
            .collect(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: lions-bench list\n       lions-bench run <workload> [--units N] [--warmup N]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for w in WORKLOADS {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    w.name, w.symbol, w.units, w.component, w.batching, w.unit
                );
            }
            ExitCode::SUCCESS
        }
        Some("run") => {
            let Some(w) = args
                .get(1)
                .and_then(|n| WORKLOADS.iter().find(|w| w.name == n))
            else {
                eprintln!("lions-bench: unknown workload (see `lions-bench list`)");
                return usage();
            };
            let mut units = w.units;
            let mut warmup = None;
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let value = rest.next().and_then(|v| v.parse().ok());
                match (flag.as_str(), value) {
                    ("--units", Some(v)) => units = v,
                    ("--warmup", Some(v)) => warmup = Some(v),
                    _ => return usage(),
                }
            }
            let warmup = warmup.unwrap_or(units / 10);
            let out = run(w, units, warmup);
            println!("units {}", out.units);
            for (ch, n) in out.notifications {
                println!("notify {ch} {n}");
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload runs natively, small, and its own checks pass (they panic otherwise); the
    /// measured units are at least those asked for and notifications were counted.
    #[test]
    fn every_workload_runs_and_checks_itself() {
        for w in WORKLOADS {
            let out = run(w, 2_000, 300);
            assert!(out.units >= 2_000, "{}: {} units", w.name, out.units);
            assert!(!out.notifications.is_empty(), "{}: no notification", w.name);
        }
    }

    #[test]
    fn names_are_unique_and_symbols_are_wrappers() {
        for (i, w) in WORKLOADS.iter().enumerate() {
            assert!(
                WORKLOADS[..i].iter().all(|v| v.name != w.name),
                "{}",
                w.name
            );
            assert!(w.symbol.starts_with("insns_"), "{}", w.symbol);
        }
    }
}
