#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# make-disk.sh OUT [DIR] [MIB]: the webserver example's disk image, a raw GPT disk with one FAT
# partition holding the files of DIR (default: a small site made here), made with Linux tools
# only (sfdisk from `fdisk`, mkfs.fat from `dosfstools`, mcopy from `mtools`).
#
#   bytes 0..1 MiB   protective MBR, primary GPT header and entry array
#   partition 1      MIB MiB (default 64; at most 240) from 1 MiB: "webserver-site", FAT16 with
#                    4 KiB clusters, label LIONS-WEB, holding DIR's tree (mcopy -s)
#   last 1 MiB       backup GPT entry array and header
#
# OUT is replaced. FAT keeps names as given up to 255 characters (VFAT long names).
set -euo pipefail

usage() { echo "usage: $0 OUT.img [DIR] [MIB (default 64)]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || usage
out=$1
dir=${2:-}
mib=${3:-64}
case $mib in '' | *[!0-9]*) usage ;; esac
[ "$mib" -ge 32 ] && [ "$mib" -le 240 ] || { echo "$0: MIB must be 32..240" >&2; exit 2; }

export PATH="$PATH:/usr/sbin:/sbin"
for tool in sfdisk mkfs.fat mcopy truncate; do
  command -v "$tool" >/dev/null || { echo "$0: missing $tool (Debian: apt-get install fdisk dosfstools mtools)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$dir" ]; then
  dir=$work/site
  mkdir -p "$dir/docs"
  printf '<!doctype html>\n<title>LionsOS</title>\n<h1>Served by LionsOS on the host board</h1>\n<p><a href="docs/">docs</a></p>\n' >"$dir/index.html"
  printf '<!doctype html>\n<title>docs</title>\n<p>The web server PD reads this through the FAT server.</p>\n' >"$dir/docs/index.html"
  printf 'Hello from the webserver example.\n' >"$dir/hello.txt"
fi

sector=512
start=2048
sectors=$((mib * 1024 * 1024 / sector))
mkdir -p -- "$(dirname -- "$out")"
rm -f -- "$out"
truncate -s $(((mib + 2) * 1024 * 1024)) "$out"
sfdisk --quiet --no-reread --no-tell-kernel "$out" <<PARTS
label: gpt
unit: sectors
sector-size: $sector
first-lba: 2048
start=$start, size=$sectors, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="webserver-site"
PARTS
mkfs.fat --invariant -S "$sector" -F 16 -s 8 -n LIONS-WEB --offset="$start" "$out" $((mib * 1024)) \
  >/dev/null 2>"$work/mkfs.err" || { cat "$work/mkfs.err" >&2; exit 1; }
export MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
if [ -n "$(ls -A "$dir")" ]; then
  # -m keeps the files' modification times (Last-Modified).
  mcopy -s -m -i "$out@@$((start * sector))" "$dir"/* ::/
fi
