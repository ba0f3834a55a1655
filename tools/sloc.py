#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Source lines of Rust code as the paper's Table 2 counts them: non-blank, non-comment lines,
tests excluded (an item under `#[cfg(test)]` or `#[cfg(all(test, ...))]`, e.g. `mod tests {...}`
or `mod tests;`, is skipped whole). Prints one count per file and the total.

    python3 tools/sloc.py crates/lions-serial/src/virt_tx.rs crates/lions-serial/src/virt_rx.rs
"""
import sys


def count(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    n, i, in_block = 0, 0, False
    while i < len(lines):
        s = lines[i].strip()
        i += 1
        if in_block:
            in_block = "*/" not in s
            continue
        if s.startswith("/*"):
            in_block = "*/" not in s
            continue
        if not s or s.startswith("//"):
            continue
        if s.startswith("#[cfg(test)]") or s.startswith("#[cfg(all(test"):
            # Skip the attributes, comments and blank lines up to the item, then the item.
            while i < len(lines) and (
                not lines[i].strip() or lines[i].strip().startswith(("#[", "//"))
            ):
                i += 1
            if i < len(lines) and lines[i].strip().endswith(";"):
                i += 1
                continue
            depth, opened = 0, False
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                opened = opened or "{" in lines[i]
                i += 1
                if opened and depth <= 0:
                    break
            continue
        n += 1
    return n


if __name__ == "__main__":
    total = 0
    for p in sys.argv[1:]:
        c = count(p)
        total += c
        print(f"{c:6} {p}")
    print(f"{total:6} total")
