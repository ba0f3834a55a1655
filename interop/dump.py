#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Print size, magic and the first bytes (hex + ASCII) of sdfgen .data blobs.

usage: dump.py [-n BYTES] FILE.data...
"""
import argparse
from pathlib import Path


def magic(data: bytes) -> str:
    if data[:7] == b"LionsOS" and len(data) >= 8:
        return f'"LionsOS" + 0x{data[7]:02x}'
    if data[:4] == b"sDDF" and len(data) >= 5:
        return f'"sDDF" + 0x{data[4]:02x}'
    return "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=64, help="bytes to show (default 64)")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.files:
        data = path.read_bytes()
        print(f"{path}: {len(data)} bytes, magic {magic(data)}")
        for off in range(0, min(len(data), args.n), 16):
            row = data[off:off + 16]
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
            print(f"  {off:04x}  {row.hex(' '):<47}  {text}")


if __name__ == "__main__":
    main()
