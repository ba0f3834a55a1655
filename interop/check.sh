#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Regenerate the fixtures into a temporary directory and compare them with the
# committed ones. Exits non-zero on any difference (for CI).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$HERE/generate.sh" "$TMP"
if diff -r "$HERE/fixtures" "$TMP"; then
    echo "interop fixtures: up to date"
else
    echo "interop fixtures differ from sdfgen output: run interop/generate.sh" >&2
    exit 1
fi
