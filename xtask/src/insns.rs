// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask bench insns`: instructions per unit inside each component, counted by callgrind,
//! beside sDDF 0.7.0's C components.
//!
//! ## How a number is made
//!
//! 1. `cargo build -p lions-bench --profile bench-insns` (release code generation with line tables;
//!    the crate alone, so lions-os is built without `std`, as on seL4).
//! 2. For each workload (`lions-bench list`): `valgrind --tool=callgrind
//!    --toggle-collect=insns_<component>` on `lions-bench run <workload>`. Only the component's
//!    measured event wrapper (and everything it calls) is collected: not the warm-up (another
//!    wrapper), not the bench's peers.
//! 3. From the collected total, subtract the self cost of the kernel shim (`insns_shim_notify`
//!    and the shim's `Backend` methods: the stand-in for the seL4 system call), and for the copier
//!    the self cost of libc's `memcpy`/`memmove` (the payload copy, excluded as in the C figures).
//! 4. Divide by the units the workload reports (`units N` on its stdout); notifications per unit
//!    are its `notify <channel> <count>` lines summed, divided likewise.

use crate::{Error, target_dir};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// The C figures: instructions per unit of sDDF 0.7.0's C components (clang 19 `-O2` with sDDF's
/// release flags, x86_64, counted with callgrind inside the component, coherent cache,
/// libmicrokit's notify shimmed; copier payload copy excluded) under the same workloads, as
/// measured for issue 11 (its table). sDDF's Tx virt has one policy, in order: both Tx rows use
/// it. The blk virt was not measured in C.
pub const C_REFERENCE: &[(&str, f64)] = &[
    ("net_rx_32", 149.9),
    ("net_rx_1", 334.5),
    ("net_copy_32", 92.9),
    ("net_copy_1", 137.0),
    ("net_tx_rr_32", 162.4),
    ("net_tx_rr_1", 370.5),
    ("net_tx_inorder_32", 162.4),
    ("net_tx_inorder_1", 370.5),
    ("serial_tx_1", 182.0),
    ("serial_tx_32", 12.1),
    ("serial_tx_colour", 310.3),
    ("serial_rx_1", 93.0),
    ("serial_rx_32", 41.7),
];

/// The measured wrapper whose payload copy is excluded.
const COPIER: &str = "insns_net_copier";

/// What `bench insns` was asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsnsArgs {
    /// Workload name prefixes; empty: all.
    pub only: Vec<String>,
    /// Print JSON instead of the table.
    pub json: bool,
    /// Units per workload instead of each workload's default.
    pub units: Option<u64>,
    /// Print the top N functions (self cost) per workload.
    pub top: usize,
}

/// One workload as `lions-bench list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Name.
    pub name: String,
    /// Measured wrapper symbol.
    pub symbol: String,
    /// Default units.
    pub units: u64,
    /// Component, batching, unit (for the table).
    pub component: String,
    /// Batching.
    pub batching: String,
    /// What a unit is.
    pub unit: String,
}

/// Parse `lions-bench list` output.
pub fn parse_list(text: &str) -> Result<Vec<Workload>, Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, symbol, units, component, batching, unit] = f[..] else {
                return Err(Error::invalid(
                    "lions-bench list",
                    format!("bad line `{l}`"),
                ));
            };
            Ok(Workload {
                name: name.into(),
                symbol: symbol.into(),
                units: units.parse().map_err(|_| {
                    Error::invalid("lions-bench list", format!("bad units in `{l}`"))
                })?,
                component: component.into(),
                batching: batching.into(),
                unit: unit.into(),
            })
        })
        .collect()
}

/// Self cost (first event, `Ir`) per function of a callgrind output file, and its total.
#[derive(Debug, Default)]
pub struct Profile {
    /// The `summary:`/`totals:` value.
    pub total: u64,
    /// Self cost by function name.
    pub self_cost: HashMap<String, u64>,
}

/// Parse a callgrind output file (format version 1, with or without name compression). Cost
/// lines after a `calls=` line are the inclusive cost of that call and are not self cost.
pub fn parse_callgrind(text: &str) -> Result<Profile, Error> {
    let mut p = Profile::default();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut positions = 1;
    let mut current = String::new();
    let mut skip_next = false;
    // "(id) name" defines id; "(id)" refers to it; "name" is uncompressed.
    let mut name_of = |spec: &str| -> String {
        let spec = spec.trim();
        match spec.strip_prefix('(').and_then(|s| s.split_once(')')) {
            Some((id, rest)) if !rest.trim().is_empty() => {
                names.insert(id.to_owned(), rest.trim().to_owned());
                rest.trim().to_owned()
            }
            Some((id, _)) => names.get(id).cloned().unwrap_or_else(|| format!("({id})")),
            None => spec.to_owned(),
        }
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("positions:") {
            positions = v.split_whitespace().count().max(1);
        } else if let Some(v) = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
        {
            let v = v.split_whitespace().next().unwrap_or("0");
            p.total = p.total.max(v.parse().unwrap_or(0));
        } else if let Some(v) = line.strip_prefix("fn=") {
            current = name_of(v);
        } else if let Some(v) = line.strip_prefix("cfn=") {
            name_of(v);
        } else if line.starts_with("calls=") {
            skip_next = true;
        } else if line
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '*'))
        {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            let cost = line
                .split_whitespace()
                .nth(positions)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            *p.self_cost.entry(current.clone()).or_default() += cost;
        }
    }
    Ok(p)
}

/// Whether `name` is the bench's kernel shim (subtracted everywhere).
fn is_shim(name: &str) -> bool {
    name.contains("insns_shim_")
        || name.contains("lions_bench::os::Shim as lions_os::runtime::Backend")
}

/// Whether `name` is libc's copy routine (subtracted for the copier).
fn is_copy(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("memcpy") || n.contains("memmove")
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload.
    pub workload: Workload,
    /// Units measured.
    pub units: u64,
    /// Instructions per unit inside the component (shim and, for the copier, the copy excluded).
    pub per_unit: f64,
    /// The excluded payload copy per unit (copier only).
    pub copy_per_unit: Option<f64>,
    /// Notifications per unit.
    pub notify_per_unit: f64,
    /// The C figure, if there is one.
    pub c: Option<f64>,
    /// Top functions by self cost, per unit.
    pub top: Vec<(String, f64)>,
}

/// Reduce one workload's profile and stdout to its row.
pub fn row(w: &Workload, profile: &Profile, stdout: &str, top: usize) -> Result<Row, Error> {
    let mut units = None;
    let mut notifications = 0u64;
    for l in stdout.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["units", n] => units = n.parse::<u64>().ok(),
            ["notify", _, n] => notifications += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    let units = units
        .filter(|&u| u > 0)
        .ok_or_else(|| Error::invalid(w.name.clone(), "the workload reported no units"))?;
    if profile.total == 0 {
        return Err(Error::invalid(
            w.name.clone(),
            format!(
                "callgrind collected nothing under `{}` (symbol missing?)",
                w.symbol
            ),
        ));
    }
    let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
        profile
            .self_cost
            .iter()
            .filter(|(n, _)| f(n))
            .map(|(_, c)| c)
            .sum()
    };
    let shim = sum(&is_shim);
    let copy = if w.symbol == COPIER { sum(&is_copy) } else { 0 };
    let per = |n: u64| n as f64 / units as f64;
    let mut fns: Vec<(&String, &u64)> = profile
        .self_cost
        .iter()
        .filter(|(n, c)| **c > 0 && !is_shim(n) && !(copy > 0 && is_copy(n)))
        .collect();
    fns.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    Ok(Row {
        workload: w.clone(),
        units,
        per_unit: per(profile.total.saturating_sub(shim + copy)),
        copy_per_unit: (w.symbol == COPIER).then(|| per(copy)),
        notify_per_unit: per(notifications),
        c: C_REFERENCE
            .iter()
            .find(|(n, _)| *n == w.name)
            .map(|&(_, c)| c),
        top: fns
            .into_iter()
            .take(top)
            .map(|(n, &c)| (n.clone(), per(c)))
            .collect(),
    })
}

/// The table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| component | batching | unit | C insns/unit | ours | ours / C | notifications/unit (ours) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let (c, ratio) = match r.c {
            Some(c) => (format!("{c:.1}"), format!("{:.2}", r.per_unit / c)),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {c} | {:.1} | {ratio} | {:.3} |",
            r.workload.component,
            r.workload.batching,
            r.workload.unit,
            r.per_unit,
            r.notify_per_unit
        );
    }
    let copies: Vec<String> = rows
        .iter()
        .filter_map(|r| Some(format!("{}: {:.1}", r.workload.name, r.copy_per_unit?)))
        .collect();
    if !copies.is_empty() {
        let _ = writeln!(
            s,
            "\ncopier payload copy (libc memcpy, excluded above; C: 171 per frame): {}",
            copies.join(", ")
        );
    }
    for r in rows.iter().filter(|r| !r.top.is_empty()) {
        let _ = writeln!(
            s,
            "\n{} ({}), self instructions per {}:",
            r.workload.name, r.workload.symbol, r.workload.unit
        );
        for (n, c) in &r.top {
            let _ = writeln!(s, "  {c:10.1}  {n}");
        }
    }
    s
}

/// Rounded to `places` decimals, as the table prints it.
fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

/// The rows as a JSON array (figures rounded as the table prints them).
pub fn json(rows: &[Row]) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let top: Vec<serde_json::Value> = r
                .top
                .iter()
                .map(|(n, c)| serde_json::json!([n, round(*c, 2)]))
                .collect();
            serde_json::json!({
                "workload": r.workload.name,
                "component": r.workload.component,
                "batching": r.workload.batching,
                "unit": r.workload.unit,
                "units": r.units,
                "c": r.c.map(|c| round(c, 2)),
                "ours": round(r.per_unit, 2),
                "ratio": r.c.map(|c| round(r.per_unit / c, 2)),
                "notify_per_unit": round(r.notify_per_unit, 4),
                "copy_excluded_per_unit": r.copy_per_unit.map(|c| round(c, 2)),
                "top": top,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_default()
}

fn output_of(mut cmd: Process, what: &str) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::start(what, e))?;
    if !out.status.success() {
        return Err(Error::failed(
            what,
            out.status,
            format!(":\n{}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Build lions-bench and measure the workloads asked for; print the table (or JSON).
pub fn run(root: &Path, args: &InsnsArgs) -> Result<(), Error> {
    if Process::new("valgrind").arg("--version").output().is_err() {
        return Err(Error::missing(
            "valgrind is not installed; install it (Debian/Ubuntu: `apt-get install valgrind`)",
        ));
    }
    let mut build = Process::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(root)
        .args(["build", "-p", "lions-bench", "--profile", "bench-insns"]);
    let status = build
        .status()
        .map_err(|e| Error::start("cargo build -p lions-bench", e))?;
    if !status.success() {
        return Err(Error::failed("cargo build -p lions-bench", status, ""));
    }
    let bin = target_dir(root).join("bench-insns").join("lions-bench");
    let mut list = Process::new(&bin);
    list.arg("list");
    let all = parse_list(&output_of(list, "lions-bench list")?)?;
    let chosen: Vec<&Workload> = all
        .iter()
        .filter(|w| {
            args.only.is_empty() || args.only.iter().any(|p| w.name.starts_with(p.as_str()))
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
        return Err(Error::usage(format!(
            "no workload matches {:?}; workloads: {}",
            args.only,
            names.join(", ")
        )));
    }
    let dir = target_dir(root).join("bench-insns").join("callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let mut rows = Vec::new();
    for w in chosen {
        let units = args.units.unwrap_or(w.units);
        eprintln!("xtask: {} ({units} {}s under callgrind)", w.name, w.unit);
        let out_file: PathBuf = dir.join(format!("{}.out", w.name));
        let mut vg = Process::new("valgrind");
        vg.arg("--tool=callgrind")
            .arg(format!("--toggle-collect={}", w.symbol))
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(&bin)
            .args(["run", &w.name, "--units", &units.to_string()]);
        let stdout = output_of(vg, &format!("valgrind lions-bench run {}", w.name))?;
        let text =
            std::fs::read_to_string(&out_file).map_err(|e| Error::io("reading", &out_file, e))?;
        rows.push(row(w, &parse_callgrind(&text)?, &stdout, args.top)?);
    }
    if args.json {
        println!("{}", json(&rows));
    } else {
        print!("{}", table(&rows));
        println!(
            "\nC: sDDF 0.7.0 C components, clang 19 -O2 with sDDF's release flags, x86_64, callgrind, \
             coherent cache, libmicrokit notify shimmed, the same workloads (issue 11).\n\
             ours: instructions inside the component's event (its deferred notify included, the \
             kernel shim excluded), per unit, after a warm-up; callgrind files in {}",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# callgrind format
version: 1
positions: line
events: Ir
summary: 1000

ob=(1) /bin/x
fl=(1) ???
fn=(1) insns_net_copier
0 10
cfn=(2) __memcpy_avx_unaligned_erms
calls=2 0
0 300
cfn=(3) insns_shim_notify
calls=1 0
0 5
+3 85
fn=(2)
0 300
fn=(3)
0 5
fn=(4) <lions_net::copy::Copier as lions_os::handler::Handler>::notified
0 600
";

    #[test]
    fn json_rows_carry_every_figure_rounded() {
        let r = Row {
            workload: w("sym\"quoted"),
            units: 10,
            per_unit: 123.456,
            copy_per_unit: None,
            notify_per_unit: 0.031_25,
            c: Some(100.0),
            top: vec![("f \"g\"".into(), 1.234)],
        };
        let v: serde_json::Value = serde_json::from_str(&json(&[r])).unwrap();
        let row = &v[0];
        assert_eq!(row["workload"], "net_copy_32");
        assert_eq!(row["ours"], 123.46);
        assert_eq!(row["ratio"], 1.23);
        assert_eq!(row["notify_per_unit"], 0.0313);
        assert!(row["copy_excluded_per_unit"].is_null());
        assert_eq!(row["top"][0][0], "f \"g\"");
        assert_eq!(row["top"][0][1], 1.23);
    }

    fn w(symbol: &str) -> Workload {
        Workload {
            name: "net_copy_32".into(),
            symbol: symbol.into(),
            units: 10,
            component: "net copier".into(),
            batching: "32 per notify".into(),
            unit: "frame".into(),
        }
    }

    #[test]
    fn self_costs_skip_inclusive_call_lines() {
        let p = parse_callgrind(SAMPLE).unwrap();
        assert_eq!(p.total, 1000);
        assert_eq!(p.self_cost["insns_net_copier"], 95);
        assert_eq!(p.self_cost["__memcpy_avx_unaligned_erms"], 300);
        assert_eq!(p.self_cost["insns_shim_notify"], 5);
        assert_eq!(
            p.self_cost["<lions_net::copy::Copier as lions_os::handler::Handler>::notified"],
            600
        );
    }

    #[test]
    fn rows_exclude_the_shim_and_the_copiers_copy() {
        let p = parse_callgrind(SAMPLE).unwrap();
        let r = row(&w(COPIER), &p, "units 10\nnotify 0 5\nnotify 1 5\n", 2).unwrap();
        assert_eq!(r.per_unit, 69.5);
        assert_eq!(r.copy_per_unit, Some(30.0));
        assert_eq!(r.notify_per_unit, 1.0);
        assert_eq!(r.c, Some(92.9));
        assert_eq!(r.top.len(), 2);
        assert_eq!(r.top[0].1, 60.0);
        // Another component keeps its copies.
        let r = row(&w("insns_net_virt_rx"), &p, "units 10\n", 0).unwrap();
        assert_eq!(r.per_unit, 99.5);
        assert!(row(&w(COPIER), &p, "", 0).is_err(), "no units reported");
        let t = table(&[row(&w(COPIER), &p, "units 10\n", 0).unwrap()]);
        assert!(
            t.contains("| net copier | 32 per notify | frame | 92.9 | 69.5 | 0.75 |"),
            "{t}"
        );
    }

    #[test]
    fn list_lines_parse() {
        let l =
            parse_list("net_rx_32\tinsns_net_virt_rx\t100000\tnet Rx virt\t32 per notify\tframe\n")
                .unwrap();
        assert_eq!(l[0].symbol, "insns_net_virt_rx");
        assert_eq!(l[0].units, 100_000);
        assert!(parse_list("x\ty\n").is_err());
        assert!(C_REFERENCE.iter().all(|(n, c)| !n.is_empty() && *c > 0.0));
    }
}
