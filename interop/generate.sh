#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Regenerate every interop fixture with the real sdfgen:
#   interop/generate.sh [OUT_DIR]   (default: interop/fixtures)
# Each system directory is wiped and recreated.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/fixtures}"
SYSTEMS=(serial timer blk i2c net net_vswitch fat nfs virtio_sddf)

export PYTHONDONTWRITEBYTECODE=1
PY="$("$HERE/setup-venv.sh")"
mkdir -p "$OUT"
for system in "${SYSTEMS[@]}"; do
    rm -rf "${OUT:?}/$system"
    # sdfgen logs an "info:" line for every sDDF driver class directory we do
    # not have (gpu, gpio, ...); drop those, keep anything else.
    "$PY" "$HERE/meta/$system.py" --output "$OUT/$system" \
        2> >(grep -v "^info: failed to open sDDF driver directory" >&2)
    echo "generated $system: $(find "$OUT/$system" -type f | wc -l) files" >&2
done
