#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# make-disk.sh OUT [P1_MIB]: the fileio example's disk image, a raw GPT disk with two FAT
# partitions, made with Linux tools only (sfdisk from util-linux's `fdisk` package, mkfs.fat from
# `dosfstools`, mcopy/mmd from `mtools`).
#
#   bytes 0..1 MiB       protective MBR, primary GPT header and entry array
#   partition 1          P1_MIB MiB (default 64) from 1 MiB: "fileio-fs", FAT16 (FAT32 above
#                        240 MiB; 241..271 MiB fit neither with these clusters) with 4 KiB
#                        clusters, label LIONS-P1, holding /hello.txt. The fs_fat server serves
#                        it; the fileio PD changes it.
#   partition 2          8 MiB right after it: "fileio-spare", FAT, label LIONS-P2, holding
#                        /README.TXT and /numbers/1-20000.txt. Nothing in the system is given it:
#                        it must come out of a run byte for byte as it went in.
#   last 1 MiB           backup GPT entry array and header
#
# Partition type "Microsoft basic data"; disk and partition GUIDs are fixed and mkfs.fat runs with
# --invariant, so the same command makes the same image (mtools still stamps file times).
# OUT is replaced (its folder made if missing). Prints the layout (sfdisk -d) when done.
set -euo pipefail

usage() { echo "usage: $0 OUT.img [P1_MIB (default 64)]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
p1_mib=${2:-64}
p2_mib=8
case $p1_mib in '' | *[!0-9]*) usage ;; esac
[ "$p1_mib" -ge 32 ] || { echo "$0: partition 1 needs at least 32 MiB" >&2; exit 2; }
# 4 KiB clusters (8 sectors): with mkfs.fat's default alignment the data area then starts on a
# 4 KiB boundary, so a cluster is exactly one blk transfer unit and file data never needs a
# read-modify-write. FAT16 holds at most 65524 clusters, FAT32 needs at least 65525.
if [ "$p1_mib" -le 240 ]; then
  p1_fat=16
elif [ "$p1_mib" -ge 272 ]; then
  p1_fat=32
else
  echo "$0: with 4 KiB clusters partition 1 is FAT16 up to 240 MiB or FAT32 from 272 MiB" >&2
  exit 2
fi

# mkfs.fat and sfdisk live in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for tool in sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools mmd:mtools truncate:coreutils; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool%%:*} (Debian package ${tool##*:})")
done
if [ ${#missing[@]} -gt 0 ]; then
  printf '%s: missing tools: %s\n' "$0" "${missing[*]}" >&2
  echo "  Debian: apt-get install fdisk dosfstools mtools" >&2
  exit 1
fi

mib=$((1024 * 1024))
sector=512
p1_start=2048                               # sectors: 1 MiB
p1_sectors=$((p1_mib * mib / sector))
p2_start=$((p1_start + p1_sectors))
p2_sectors=$((p2_mib * mib / sector))
total=$(((1 + p1_mib + p2_mib + 1) * mib))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p -- "$(dirname -- "$out")"
rm -f -- "$out"
truncate -s "$total" "$out"
sfdisk --quiet --no-reread --no-tell-kernel "$out" <<EOF
label: gpt
label-id: 6C696F6E-7366-494C-4549-4F2D4449534B
unit: sectors
sector-size: $sector
first-lba: 2048
start=$p1_start, size=$p1_sectors, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=6C696F6E-7366-494C-4549-4F2D50415231, name="fileio-fs"
start=$p2_start, size=$p2_sectors, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=6C696F6E-7366-494C-4549-4F2D50415232, name="fileio-spare"
EOF

# mkfs.fat counts BLOCKS in KiB and --offset in sectors. Given fewer blocks than the rest of the
# file holds it warns "block count mismatch", which is what is meant here: that line is dropped.
mkfs() {
  local label=$1 start=$2 kib=$3
  shift 3
  if ! mkfs.fat --invariant -S "$sector" "$@" -n "$label" --offset="$start" "$out" "$kib" \
    >/dev/null 2>"$work/mkfs.err"; then
    cat "$work/mkfs.err" >&2
    exit 1
  fi
  grep -v 'block count mismatch' "$work/mkfs.err" >&2 || true
}
mkfs LIONS-P1 "$p1_start" $((p1_mib * 1024)) -F "$p1_fat" -s 8
mkfs LIONS-P2 "$p2_start" $((p2_mib * 1024))

export MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
p1="$out@@$((p1_start * sector))"
p2="$out@@$((p2_start * sector))"

# Partition 1: the file the fileio PD reads first (the same bytes as HELLO_TEXT in src/lib.rs).
printf 'Hello from mtools: make-disk.sh put this file on partition 1.\n' >"$work/hello.txt"
mcopy -i "$p1" "$work/hello.txt" ::/hello.txt

# Partition 2: files the system must never touch.
printf 'Partition 2 of the fileio disk. No PD is a client of it: it stays as it was made.\n' \
  >"$work/README.TXT"
seq 1 20000 >"$work/1-20000.txt"
mcopy -i "$p2" "$work/README.TXT" ::/README.TXT
mmd -i "$p2" ::/numbers
mcopy -i "$p2" "$work/1-20000.txt" ::/numbers/1-20000.txt

sfdisk --dump "$out"
