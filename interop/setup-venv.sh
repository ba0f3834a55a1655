#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Create (once) the Python venv holding the pinned sdfgen and fdt packages,
# and print the path of its python. Logs go to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIONS_VENV:-$REPO/target/sdfgen-venv}"
PY="$VENV/bin/python"
PKGS=(sdfgen==0.35.1 fdt==0.3.3)

have_pkgs() {
    "$PY" - "${PKGS[@]}" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PYEOF
}

# Tests run in parallel and may all call this at once: one creator at a time.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [ ! -x "$PY" ]; then
    echo "setup-venv: creating $VENV" >&2
    "${PYTHON:-python3}" -m venv --clear "$VENV" >&2
fi
if ! have_pkgs; then
    echo "setup-venv: installing ${PKGS[*]}" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check "${PKGS[@]}" >&2
    have_pkgs
fi
# Our metaprogram helper (tools/lions_meta.py) as an installed module of the venv: any
# metaprogram run with this python, an example's or a product's outside this tree, imports it
# with a plain `from lions_meta import ...`. A .pth entry keeps it this checkout's file.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ "$(cat "$SITE/lions_meta.pth" 2>/dev/null)" != "$REPO/tools" ]; then
    echo "$REPO/tools" >"$SITE/lions_meta.pth"
fi
echo "$PY"
