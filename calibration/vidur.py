"""An H100 GEMM table fitted from Vidur's published H100 measurements (not a ``trilemma calibrate`` run).

    python -m calibration.vidur [--csv tests/data/vidur/gemm_h100_fp16.csv] [--out DIR]

Vidur (github.com/microsoft/vidur, MIT licence) measured the four GEMMs of Llama-2-7B and -70B layers on
one H100 in fp16 at 1..4096 tokens and TP 1..8 (``tests/data/vidur/README.md``). The same fit as
``calibration.fit`` turns them into fp16 curves, copied as bf16 (same tensor-core rate). Prints the
GEMM error against those timings with the profile alone and with the table, in-sample and with one model
held out. Units: seconds; errors in %.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

from calibration.fit import build_table
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile, load_hardware
from simulator.ops import gemm_time_s

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT / "tests" / "data" / "vidur" / "gemm_h100_fp16.csv"
SOURCE = (
    "fitted from Vidur's published H100 measurements (github.com/microsoft/vidur at 7d47513, "
    "data/profiling/compute/h100, MIT licence; fp16 GEMMs of Llama-2-7B/70B layers, TP 1-8), "
    "not a trilemma calibrate run; bf16 curve = the fp16 one"
)


def gemm_shape(row: dict[str, str]) -> tuple[int, int]:
    """(n, k) of Vidur's op for one TP shard (Megatron sharding, as tests/test_vs_vidur.py)."""
    tp = int(row["num_tensor_parallel_workers"])
    hidden, heads, kv = int(row["n_embd"]), int(row["n_head"]), int(row["n_kv_head"])
    inter, head_dim = int(row["n_expanded_embd"]), hidden // heads
    up = 2 * inter if row["use_gated_mlp"] == "True" else inter
    return {
        "attn_pre_proj": ((heads // tp + 2 * max(1, kv // tp)) * head_dim, hidden),
        "attn_post_proj": (hidden, heads // tp * head_dim),
        "mlp_up_proj": (up // tp, hidden),
        "mlp_down_proj": (hidden, inter // tp),
    }[row["op"]]


def measurements(csv_path: Path) -> list[dict[str, Any]]:
    """Vidur's rows as calibration measurements (fp16 weights and activations)."""
    out = []
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            m = int(row["num_tokens"])
            n, k = gemm_shape(row)
            out.append(
                {
                    "op_class": "gemm",
                    "dtype": "fp16",
                    "op": f"{row['model']} {row['op']} tp{row['num_tensor_parallel_workers']}",
                    "shape": {"m": m, "n": n, "k": k},
                    "flops": 2.0 * m * n * k,
                    "num_bytes": (n * k + m * k + m * n) * 2.0,
                    "time_s": float(row["median_ms"]) * 1e-3,
                }
            )
    return out


def fit_table(rows: list[dict[str, Any]], hardware: HardwareProfile) -> CalibrationTable:
    """The fp16 and bf16 GEMM curves of ``rows`` against ``hardware``'s spec roofline."""
    raw = {
        "device": "NVIDIA H100 (Vidur's measurements, PyTorch/CUDA)",
        "backend": "cuda (Vidur, not JAX)",
        "driver": "n/a (Vidur's profiling run)",
        "jax_version": "n/a",
        "date": "2024-11-19",
        "dispatch_s": 0.0,
        "step_model": {},
        "steps": [],
        "measurements": rows + [{**r, "dtype": "bf16"} for r in rows],
    }
    peaks = {d: hardware.peak_flops(d) for d in ("fp16", "bf16")}
    return build_table(raw, hardware.name, SOURCE, peaks, hardware.hbm_bandwidth_bytes_per_s)


def gemm_errors(
    rows: list[dict[str, Any]], hardware: HardwareProfile, table: CalibrationTable | None
) -> list[float]:
    """Absolute % error of each row's predicted GEMM time."""
    errs = []
    for r in rows:
        s = r["shape"]
        t = gemm_time_s(hardware, s["m"], s["n"], s["k"], "fp16", table)
        errs.append(abs(t - r["time_s"]) / r["time_s"] * 100.0)
    return errs


def _line(name: str, errs: list[float]) -> str:
    return f"{name:<44} median {statistics.median(errs):5.1f}%  worst {max(errs):6.1f}%  (n={len(errs)})"


def main(argv: list[str] | None = None) -> int:
    """Fit, write ``<out>/h100-sxm.json``, print the before/after GEMM errors."""
    parser = argparse.ArgumentParser(prog="python -m calibration.vidur", description=__doc__)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=ROOT / "hardware_profiles" / "calibration")
    args = parser.parse_args(argv)
    hw = load_hardware("h100-sxm")
    rows = measurements(args.csv)
    table = fit_table(rows, hw)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{hw.name}.json"
    path.write_text(json.dumps(table.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    print(_line("spec-only (profile constants)", gemm_errors(rows, hw, None)))
    print(_line("calibrated, in-sample", gemm_errors(rows, hw, table)))
    for held in ("Llama-2-7b", "Llama-2-70b"):
        train = [r for r in rows if held not in r["op"]]
        test = [r for r in rows if held in r["op"]]
        print(_line(f"{held} held out: spec-only", gemm_errors(test, hw, None)))
        print(_line(f"{held} held out: fitted on the other", gemm_errors(test, hw, fit_table(train, hw))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
