// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask size`: code lines of each component and class library beside the paper's Table 2.
//!
//! The paper (and `design.md`'s size budget) counts trusted C code with sloccount: lines that are
//! neither blank nor only comment. [`code_lines`] applies the same rule to Rust and leaves out
//! test code: an item under `#[cfg(test)]` (an inline `mod tests { ... }` or a `mod tests;` whose
//! file then is not read) is skipped up to its closing brace. Each row of [`ROWS`] names the files
//! of one component (its library module and its `lions-components` binary) or library, so a
//! reader can check what was counted; `--files` prints the count of every file.

use crate::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row of the table: what is counted and the paper's figure for its C twin.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The component or library, as Table 2 names it.
    pub name: &'static str,
    /// The paper's C line count (`None`: no C twin in Table 2).
    pub budget: Option<u32>,
    /// Files or folders (every `.rs` below, test files excluded) relative to the workspace root.
    pub paths: &'static [&'static str],
}

const BIN: &str = "crates/lions-components/src/bin/";

macro_rules! bin {
    ($name:literal) => {
        concat!("crates/lions-components/src/bin/", $name, ".rs")
    };
}

/// The components and libraries of Table 2, and what each is in this workspace.
pub const ROWS: &[Row] = &[
    Row {
        name: "serial driver (PL011)",
        budget: Some(249),
        paths: &[
            "crates/lions-serial/src/driver.rs",
            "crates/lions-drivers/src/qemu_virt_aarch64/pl011.rs",
            bin!("serial_driver_pl011"),
        ],
    },
    Row {
        name: "serial Tx virt",
        budget: Some(175),
        paths: &["crates/lions-serial/src/virt_tx.rs", bin!("serial_virt_tx")],
    },
    Row {
        name: "serial Rx virt",
        budget: Some(126),
        paths: &["crates/lions-serial/src/virt_rx.rs", bin!("serial_virt_rx")],
    },
    Row {
        name: "I2C driver (Meson)",
        budget: Some(514),
        paths: &[
            "crates/lions-i2c/src/driver.rs",
            "crates/lions-drivers/src/i2c/meson.rs",
            bin!("i2c_driver_meson"),
        ],
    },
    Row {
        name: "I2C virt",
        budget: Some(154),
        paths: &["crates/lions-i2c/src/virt.rs", bin!("i2c_virt")],
    },
    Row {
        name: "timer driver (ARM generic)",
        budget: Some(136),
        paths: &[
            "crates/lions-timer/src/driver.rs",
            "crates/lions-drivers/src/qemu_virt_aarch64/generic_timer.rs",
            bin!("timer_driver_arm_generic"),
        ],
    },
    Row {
        name: "eth driver (virtio-net)",
        budget: Some(397),
        paths: &[
            "crates/lions-net/src/driver.rs",
            "crates/lions-drivers/src/qemu_virt_aarch64/virtio_net.rs",
            bin!("net_driver_virtio"),
        ],
    },
    Row {
        name: "eth Tx virt",
        budget: Some(122),
        paths: &["crates/lions-net/src/virt_tx.rs", bin!("net_virt_tx")],
    },
    Row {
        name: "eth Tx policies and their config (C: in order only)",
        budget: None,
        paths: &["crates/lions-net/src/policy.rs"],
    },
    Row {
        name: "eth Rx virt",
        budget: Some(160),
        paths: &["crates/lions-net/src/virt_rx.rs", bin!("net_virt_rx")],
    },
    Row {
        name: "eth copier",
        budget: Some(79),
        paths: &["crates/lions-net/src/copy.rs", bin!("net_copy")],
    },
    Row {
        name: "Microkit layer (lions-os without host/sim)",
        budget: Some(303),
        paths: &[
            "crates/lions-os/src/microkit/mod.rs",
            "crates/lions-os/src/microkit/abi.rs",
            "crates/lions-os/src/microkit/board.rs",
            "crates/lions-os/src/microkit/pd.rs",
            "crates/lions-os/src/microkit/rt.rs",
            "crates/lions-os/src/microkit/sel4.rs",
            "crates/lions-os/src/lib.rs",
            "crates/lions-os/src/channel.rs",
            "crates/lions-os/src/config.rs",
            "crates/lions-os/src/cell.rs",
            "crates/lions-os/src/entry.rs",
            "crates/lions-os/src/error.rs",
            "crates/lions-os/src/handler.rs",
            "crates/lions-os/src/runtime.rs",
        ],
    },
    Row {
        name: "VMM's vCPU calls (lions-os microkit::vcpu; libvmm's part)",
        budget: None,
        paths: &["crates/lions-os/src/microkit/vcpu.rs"],
    },
    Row {
        name: "serial queue (with the byte ring)",
        budget: Some(219),
        paths: &[
            "crates/lions-serial/src/queue.rs",
            "crates/lions-queue/src/bytes.rs",
        ],
    },
    Row {
        name: "I2C queue",
        budget: Some(101),
        paths: &["crates/lions-i2c/src/queue.rs"],
    },
    Row {
        name: "eth queue",
        budget: Some(140),
        paths: &["crates/lions-net/src/queue.rs"],
    },
    Row {
        name: "fs queue and protocol",
        budget: Some(268),
        paths: &[
            "crates/lions-fs/src/queue.rs",
            "crates/lions-fs/src/protocol.rs",
        ],
    },
    Row {
        name: "SPSC ring, client table, FIFOs (lions-queue, shared by every class)",
        budget: None,
        paths: &[
            "crates/lions-queue/src/lib.rs",
            "crates/lions-queue/src/ring.rs",
            "crates/lions-queue/src/capacity.rs",
            "crates/lions-queue/src/index.rs",
            "crates/lions-queue/src/memory.rs",
            "crates/lions-queue/src/signal.rs",
            "crates/lions-queue/src/sync.rs",
            "crates/lions-queue/src/clients.rs",
            "crates/lions-queue/src/fifo.rs",
        ],
    },
];

/// Code lines of Rust source: not blank, not only a comment, not test code.
///
/// Comments are `//` lines (doc comments included) and `/* ... */` blocks; an item preceded by an
/// attribute line `#[cfg(test)]` (or `#[cfg(all(test, ...))]`) is skipped to the end of its braces (or its `;`). String
/// literals are not parsed: a `/*` or brace inside a string on a test-item line can miscount,
/// which this workspace's sources do not do.
pub fn code_lines(src: &str) -> u32 {
    let mut count = 0;
    let mut in_block = false;
    // Inside a `#[cfg(test)]` item: the brace depth reached so far (None: not yet opened).
    let mut skipping: Option<Option<isize>> = None;
    for raw in src.lines() {
        let mut line = raw.trim();
        if in_block {
            match line.find("*/") {
                Some(end) => {
                    in_block = false;
                    line = line[end + 2..].trim();
                }
                None => continue,
            }
        }
        if let Some(start) = line.strip_prefix("/*") {
            if !start.contains("*/") {
                in_block = true;
            }
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if let Some(depth) = skipping.as_mut() {
            let opens = line.matches('{').count();
            let closes = line.matches('}').count();
            let d = depth.unwrap_or(0) + opens as isize - closes as isize;
            if depth.is_none() && opens == 0 {
                if line.ends_with(';') && !line.starts_with("#[") {
                    skipping = None;
                }
                continue;
            }
            *depth = Some(d);
            if d <= 0 {
                skipping = None;
            }
            continue;
        }
        if is_test_cfg(line) {
            skipping = Some(None);
            continue;
        }
        count += 1;
    }
    count
}

/// `#[cfg(test)]`, `#[cfg(all(test, ...))]` and the like: an attribute that keeps the next item
/// to test builds (`not(test)` keeps it out of them, so that item is counted).
fn is_test_cfg(line: &str) -> bool {
    line.starts_with("#[cfg(") && line.contains("test") && !line.contains("not(test")
}

/// The `.rs` files a row's path names: the file itself, or every `.rs` below a folder except
/// `tests.rs` and files in `tests/` folders (test code by this workspace's convention).
fn files_of(root: &Path, path: &str) -> Result<Vec<PathBuf>, Error> {
    let full = root.join(path);
    if full.is_file() {
        return Ok(vec![full]);
    }
    if !full.is_dir() {
        return Err(Error::invalid(
            "size",
            format!("{path} does not exist; update xtask/src/size.rs's table after moving code"),
        ));
    }
    let mut out = Vec::new();
    let mut stack = vec![full];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("reading", &dir, e))?;
        for entry in entries {
            let p = entry.map_err(|e| Error::io("reading", &dir, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() && name != "tests" {
                stack.push(p);
            } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One counted row: its total and each file's count.
#[derive(Debug, Clone)]
pub struct Counted {
    /// The row.
    pub row: Row,
    /// Code lines in all its files.
    pub total: u32,
    /// Each file (relative to the root) and its code lines.
    pub files: Vec<(String, u32)>,
}

/// Count every row of [`ROWS`] under `root`.
pub fn count(root: &Path) -> Result<Vec<Counted>, Error> {
    ROWS.iter()
        .map(|row| {
            let mut files = Vec::new();
            for path in row.paths {
                for f in files_of(root, path)? {
                    let src =
                        std::fs::read_to_string(&f).map_err(|e| Error::io("reading", &f, e))?;
                    let rel = f.strip_prefix(root).unwrap_or(&f).display().to_string();
                    files.push((rel, code_lines(&src)));
                }
            }
            let total = files.iter().map(|(_, n)| n).sum();
            Ok(Counted {
                row: *row,
                total,
                files,
            })
        })
        .collect()
}

/// The table `cargo xtask size` prints (`files`: each file's count under its row).
pub fn render(rows: &[Counted], files: bool) -> String {
    let mut out = String::from(
        "code lines (not blank, not comment, no test code) beside the paper's Table 2 (C, sloccount)\n\n",
    );
    let _ = writeln!(out, "{:<66} {:>6} {:>6} {:>6}", "", "ours", "C", "ratio");
    for c in rows {
        let (budget, ratio) = match c.row.budget {
            Some(b) => (
                b.to_string(),
                format!("{:.2}", f64::from(c.total) / f64::from(b)),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<66} {:>6} {:>6} {:>6}",
            c.row.name, c.total, budget, ratio
        );
        if files {
            for (f, n) in &c.files {
                let f = f
                    .strip_prefix(BIN)
                    .map_or(f.clone(), |b| format!("bin/{b}"));
                let _ = writeln!(out, "    {f:<62} {n:>6}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_and_test_items_are_not_code() {
        let src = "\
//! crate docs
use core::fmt; // trailing comments count as code

/// item docs
pub fn f() -> u32 {
    /* a block
       comment */
    1 /* inline */ + 1
}
#[cfg(test)]
mod tests {
    #[test]
    fn t() { assert_eq!(super::f(), 2); }
}
#[cfg(test)]
mod more_tests;
pub const X: u32 = 3;
";
        // use, fn line, `1 + 1`, `}`, const.
        assert_eq!(code_lines(src), 5);
    }

    #[test]
    fn a_cfg_test_attribute_on_a_single_line_item_skips_only_that_item() {
        let src = "#[cfg(test)]\nuse std::vec::Vec;\nfn a() {}\n";
        assert_eq!(code_lines(src), 1);
        let src = "#[cfg(all(test, not(loom)))]\nmod t {\n    fn x() {}\n}\n#[cfg(not(test))]\nfn b() {}\n";
        assert_eq!(code_lines(src), 2);
    }

    #[test]
    fn every_row_of_the_table_exists_in_this_workspace() {
        let rows = count(&crate::workspace_root()).expect("every path in ROWS exists");
        assert_eq!(rows.len(), ROWS.len());
        for c in &rows {
            assert!(c.total > 0, "{} counted no code", c.row.name);
        }
        let text = render(&rows, true);
        assert!(text.contains("serial Tx virt"), "{text}");
    }
}
