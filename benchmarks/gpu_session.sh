#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (device time is short: run this once, keep what it writes).
#
#   bash benchmarks/gpu_session.sh [OUT_DIR]        # default: $OUT if set (the device tool's folder), else docs/gpu
#
# OUT_DIR, if given, is relative to the directory you call from. The step limits add up to 550 s, under the device
# tool's 600 s per command; a session's 15 minutes also pay for starting the machine.
#
# Uses the machine's own Python and torch (no install: the device machine reaches no package index); the checkout is
# put first on PYTHONPATH. Steps, each with its own time limit so that one hang cannot eat the session:
#   1. environment: versions, GPU, and which of the suite's imports are missing (a missing one skips what needs it);
#   2. `suite doctor --gpu`: numba-cuda vs torch parity and timings at the paper's sizes -> doctor-gpu.md;
#   3. `suite bench --device cuda` (GSC, batch 128, torch and numba-cuda vs the published stack) -> bench-gsc-gpu.*;
#   4. the axonal variant trained on ssc-mini on the GPU (torch backend, the protocol's 12 epochs) -> run-ssc-mini-gpu/.
# Every step's output also goes to OUT_DIR/session.log; the script always exits 0 after trying every step and prints
# a one-line status per step at the end.
set -uo pipefail

OUT_DIR=${1:-${OUT:-}}
if [ -n "$OUT_DIR" ]; then  # absolute before the cd below
    mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
fi
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-$PWD/docs/gpu}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/session.log"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STATUS=()

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    STATUS+=("$name: exit $rc")
    echo "=== $name: exit $rc" | tee -a "$LOG"
}

step environment 60 "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "torchaudio", "numba", "numba.cuda", "dcls", "spikingjelly", "pandas", "seaborn", "rich",
             "h5py", "soundfile", "yaml"):
    try:
        module = importlib.import_module(name)
        print(f"{name:14s} {getattr(module, '__version__', 'ok')}")
    except Exception as err:  # report and go on: the later steps say what they could not do
        print(f"{name:14s} MISSING ({type(err).__name__}: {err})")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
step doctor 150 "$PY" -m suite doctor --gpu --out "$OUT_DIR/doctor-gpu.md"
step bench 220 "$PY" -m suite bench --device cuda --repeats 5 --out "$OUT_DIR/bench-gsc-gpu.json" \
    --markdown "$OUT_DIR/bench-gsc-gpu.md"
step train 120 "$PY" -m suite run --protocol ssc-mini --variant axonal --device cuda \
    --out "$OUT_DIR/run-ssc-mini-gpu"

printf '%s\n' "${STATUS[@]}" | tee -a "$LOG"
exit 0
