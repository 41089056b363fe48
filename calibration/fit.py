"""The fitting half: raw measurements -> efficiency curves -> a calibration table (and a CPU profile).

    python -m calibration.fit raw.json [more.json ...] [--profile NAME] [--out DIR]

Efficiency of a measurement = roofline time / kernel time, roofline time = max(flops / peak(dtype),
bytes / bandwidth), kernel time = measured time less the per-call dispatch overhead, clipped to 1 (the
count of clipped points is recorded in the table's notes). Per op class, dtype and bound (compute or
memory, whichever roofline term is larger) the points are grouped by size = roofline time (at most
``MAX_POINTS`` log-spaced bins, median in each) into a curve the simulator interpolates in log(size) and
clamps at the ends. Units: FLOPs, bytes, seconds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from simulator.errors import DataFileError
from simulator.hardware.calibration import OP_CLASSES, CalibrationTable

MAX_POINTS = 16
_CLASSES = OP_CLASSES


def roofline_s(m: dict[str, Any], peak_flops_per_s: dict[str, float], bandwidth: float) -> tuple[float, str]:
    """A measurement's roofline time (its size) and bound ("compute" or "memory")."""
    c, b = m["flops"] / peak_flops_per_s[m["dtype"]], m["num_bytes"] / bandwidth
    return (c, "compute") if c >= b else (b, "memory")


def kernel_time_s(m: dict[str, Any], dispatch_s: float) -> float:
    """A measurement's time less the per-call dispatch overhead (kept > 0; 1 ns at least)."""
    return max(float(m["time_s"]) - dispatch_s, 1e-9)


def efficiency(
    m: dict[str, Any], peak_flops_per_s: dict[str, float], bandwidth: float, dispatch_s: float = 0.0
) -> float:
    """Roofline time / kernel time (``kernel_time_s``) of one measurement (not clipped)."""
    return roofline_s(m, peak_flops_per_s, bandwidth)[0] / kernel_time_s(m, dispatch_s)


def _bins(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(size, eff) points -> at most MAX_POINTS (geometric-median size, median eff), sizes increasing."""
    by_size: dict[float, list[float]] = defaultdict(list)
    for size, eff in points:
        by_size[size].append(eff)
    sizes = sorted(by_size)
    if len(sizes) <= MAX_POINTS:
        return [(s, statistics.median(by_size[s])) for s in sizes]
    lo, hi = math.log(sizes[0]), math.log(sizes[-1])
    groups: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in sizes:
        i = min(MAX_POINTS - 1, int((math.log(s) - lo) / (hi - lo) * MAX_POINTS))
        groups[i].extend((s, e) for e in by_size[s])
    out = []
    for i in sorted(groups):
        g = groups[i]
        out.append(
            (math.exp(statistics.median(math.log(s) for s, _ in g)), statistics.median(e for _, e in g))
        )
    return out


def fit_curves(
    measurements: Sequence[dict[str, Any]],
    peak_flops_per_s: dict[str, float],
    bandwidth: float,
    dispatch_s: float = 0.0,
) -> tuple[list[dict[str, Any]], int]:
    """Curves (as table JSON) for every (op class, dtype) measured, and the number of clipped points."""
    grouped: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    clipped = 0
    for m in measurements:
        if m["op_class"] not in _CLASSES or m["dtype"] not in peak_flops_per_s or m["time_s"] <= 0:
            continue
        eff = efficiency(m, peak_flops_per_s, bandwidth, dispatch_s)
        clipped += eff > 1.0
        size, bound = roofline_s(m, peak_flops_per_s, bandwidth)
        grouped[(m["op_class"], m["dtype"], bound)].append((size, min(1.0, eff)))
    curves = [
        {
            "op_class": c,
            "dtype": d,
            "bound": b,
            "size_variable": "roofline_s",
            "extrapolation": "clamp",
            "points": [{"size": s, "efficiency_frac": max(e, 1e-9)} for s, e in _bins(pts)],
        }
        for (c, d, b), pts in sorted(grouped.items())
    ]
    return curves, clipped


def measured_roofline(raw: dict[str, Any]) -> tuple[dict[str, float], float]:
    """Peak FLOP/s per dtype and bandwidth as the best any measurement achieved (for a CPU profile):
    GEMMs set the peak, memory-bound ops (element-wise, decode attention) the bandwidth."""
    peaks: dict[str, float] = {}
    bandwidth = 0.0
    dispatch_s = float(raw.get("dispatch_s", 0.0))
    for m in raw["measurements"]:
        if m["op_class"] not in _CLASSES:
            continue
        t = max(kernel_time_s(m, dispatch_s), 0.5 * float(m["time_s"]))
        if m["op_class"] in ("gemm", "attention_prefill") and m["flops"] > 0:
            peaks[m["dtype"]] = max(peaks.get(m["dtype"], 0.0), m["flops"] / t)
        if m["op_class"] in ("elementwise", "attention_decode"):
            bandwidth = max(bandwidth, m["num_bytes"] / t)
    return peaks, bandwidth


def check_raw(raw: object, where: str) -> dict[str, Any]:
    """The raw file's data, or a DataFileError naming the missing or malformed field."""
    if not isinstance(raw, dict):
        raise DataFileError(where, "raw measurements must be a JSON object")
    for key in ("device", "backend", "driver", "jax_version", "date", "measurements", "steps", "step_model"):
        if key not in raw:
            raise DataFileError(where, f"missing field {key!r} (is it a `calibration.measure` output?)")
    for key in ("measurements", "steps"):
        if not isinstance(raw[key], list):
            raise DataFileError(where, f"{key} must be a list, got {type(raw[key]).__name__}")
    if not raw["measurements"]:
        raise DataFileError(where, "measurements is empty: nothing to fit")
    for i, s in enumerate(raw["steps"]):
        need_s = ("kind", "batch", "tokens", "kv_len", "time_s")
        if not isinstance(s, dict) or any(k not in s for k in need_s):
            raise DataFileError(where, f"steps[{i}] needs the fields {need_s}")
        timed = isinstance(s["time_s"], int | float) and s["time_s"] > 0
        if s["kind"] not in ("prefill", "decode") or not timed:
            raise DataFileError(where, f"steps[{i}]: kind must be prefill or decode and time_s > 0")
    for i, m in enumerate(raw["measurements"]):
        need = ("op_class", "dtype", "shape", "flops", "num_bytes", "time_s")
        if not isinstance(m, dict) or any(k not in m for k in need):
            raise DataFileError(where, f"measurements[{i}] needs the fields {need}")
        if not (isinstance(m["time_s"], int | float) and m["time_s"] > 0):
            raise DataFileError(where, f"measurements[{i}].time_s = {m['time_s']!r}: must be > 0")
    return raw


def build_table(
    raw: dict[str, Any], profile: str, source: str, peak_flops_per_s: dict[str, float], bandwidth: float
) -> CalibrationTable:
    """The calibration table of ``raw`` against the roofline (``peak_flops_per_s``, ``bandwidth``)."""
    dispatch_s = float(raw.get("dispatch_s", 0.0))
    curves, clipped = fit_curves(raw["measurements"], peak_flops_per_s, bandwidth, dispatch_s)
    notes = [f"kernel times less the per-call dispatch overhead, {dispatch_s * 1e6:.1f} us, before fitting"]
    if clipped:
        notes.append(f"{clipped} measurement(s) above the roofline were clipped to efficiency 1")
    data = {
        "schema_version": 1,
        "profile": profile,
        "source": source,
        "device": raw["device"],
        "backend": raw["backend"],
        "driver": raw["driver"],
        "jax_version": raw["jax_version"],
        "date": raw["date"],
        "peak_flops_per_s": {d: peak_flops_per_s[d] for d in sorted({c["dtype"] for c in curves})},
        "hbm_bandwidth_bytes_per_s": bandwidth,
        "curves": curves,
        "measurements": raw["measurements"],
        "steps": [{**s, "step_model": raw["step_model"]} for s in raw["steps"]],
        "skipped": raw.get("skipped", []),
        "notes": notes,
    }
    return CalibrationTable.model_validate(data)


def format_report(rows: Sequence[Any], summary: dict[str, float]) -> str:
    """Predicted-vs-measured table of whole steps as plain text (ms and %)."""
    lines = [f"{'case':<22}{'measured ms':>12}{'before ms':>11}{'err %':>8}{'after ms':>10}{'err %':>8}"]
    for r in rows:
        lines.append(
            f"{r.label:<22}{r.measured_s * 1e3:>12.3f}{r.before_s * 1e3:>11.3f}{r.before_pct:>8.1f}"
            f"{r.after_s * 1e3:>10.3f}{r.after_pct:>8.1f}"
        )
    lines.append(
        f"median |error|: before {summary['median_before_pct']:.1f}%, "
        f"after {summary['median_after_pct']:.1f}%; "
        f"worst: before {summary['worst_before_pct']:.1f}%, after {summary['worst_after_pct']:.1f}%"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m calibration.fit raw.json [more.json ...] [--profile NAME] [--out DIR]``: fit, write,
    report (several raw files: sections measured in separate runs on one device, merged)."""
    import argparse
    import json
    from pathlib import Path

    from calibration.evaluate import calibrate, error_summary, write_outputs
    from calibration.measure import merge_raw

    parser = argparse.ArgumentParser(prog="python -m calibration.fit", description=__doc__)
    parser.add_argument("raw", type=Path, nargs="+", help="output(s) of python -m calibration.measure")
    parser.add_argument("--profile", default=None, help="hardware profile name (default: the device's)")
    parser.add_argument("--out", type=Path, default=Path("hardware_profiles/calibration"))
    args = parser.parse_args(argv)
    parts = []
    for path in args.raw:
        try:
            parts.append(check_raw(json.loads(path.read_text(encoding="utf-8")), str(path)))
        except json.JSONDecodeError as exc:
            raise DataFileError(path, f"not valid JSON: {exc}") from None
    result = calibrate(merge_raw(parts), args.profile)
    for path in write_outputs(result, args.out):
        print(f"wrote {path}")
    print(format_report(result.steps, error_summary(result.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
