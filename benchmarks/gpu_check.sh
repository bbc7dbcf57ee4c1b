#!/usr/bin/env bash
# The one-shot GPU check of issue 15 (see benchmarks/gpu_check.py): run from anywhere, writes
# gpu_check.json and the pytest logs to OUT_DIR (default: $OUT). Needs only this repository and
# torch, pytest, hypothesis, pytest-xdist: no install, no network. About 5 minutes on one H200.
#
#   benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py options ...]
set -u
cd "$(dirname "$0")/.." || exit 2
out="${1:-${OUT:-}}"
if [ -z "$out" ]; then
    echo "gpu_check.sh: no output folder: pass one as the first argument or set OUT" >&2
    exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" benchmarks/gpu_check.py --out "$out" "$@"
