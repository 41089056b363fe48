#!/usr/bin/env bash
# Measure the calibration suite on this machine's accelerator with nothing but Python, JAX and numpy
# (no simulator dependencies, no install), writing the raw measurements and a log under OUT.
#
#   bash calibration/run_on_device.sh [OUT] [extra calibration.measure arguments, e.g. --quick]
#
# OUT defaults to $OUT (the device tool's output folder) or ./calibration-out. Then, on any machine with
# the simulator installed, fit and write the table (the profile comes from the device name, or --profile):
#
#   trilemma calibrate --raw OUT/raw-gemm.json --raw OUT/raw-rest.json
#
# The suite runs in two halves (GEMMs; the rest) so that each stays well inside a 10-minute job limit
# and a failure of one keeps the other. PYTHON picks the interpreter (default python3).
set -euo pipefail
out="${1:-${OUT:-calibration-out}}"
shift || true
python="${PYTHON:-python3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" -c 'import jax; print("jax", jax.__version__, jax.devices())' 2>&1 | tee "$out/device.txt"
nvidia-smi >>"$out/device.txt" 2>&1 || rocm-smi >>"$out/device.txt" 2>&1 || true
start=$(date +%s)
"$python" -m calibration.measure --sections gemm --out "$out/raw-gemm.json" "$@" 2>"$out/progress-gemm.log"
mid=$(date +%s)
"$python" -m calibration.measure --sections attention,memory,collectives,steps \
  --out "$out/raw-rest.json" "$@" 2>"$out/progress-rest.log"
end=$(date +%s)
echo "gemm: $((mid - start)) s, rest: $((end - mid)) s, total: $((end - start)) s" | tee "$out/times.txt"
