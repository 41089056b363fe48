"""The measuring half: run the benchmark suite on the default JAX device and write raw JSON.

    python -m calibration.measure --out raw.json [--quick] [--sections gemm,attention,...]

Imports jax, numpy and the standard library only (it runs on machines without the simulator's
dependencies: a bare GPU box with JAX). ``run_suite`` takes an optional ``progress(done, total, label)``
callback. A case that fails (an fp8 GEMM the compiler rejects, out of memory) is recorded under
``skipped`` with its error and the suite goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from calibration import kernels, suite
from calibration.timing import RandomInputs

Progress = Callable[[int, int, str], None]
RAW_SCHEMA = "trilemma-calibration-raw/1"
POOL_ELEMENTS = {"quick": 1 << 20, "cpu": 1 << 23, "gpu": 1 << 26}  # random bits drawn once per format


def _first_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[0] if lines else None


def driver_info(backend: str) -> str:
    """The accelerator driver (nvidia-smi / rocm-smi / /proc), or the CPU model on a CPU backend."""
    if backend == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return f"cpu: {line.split(':', 1)[1].strip()}"
        except OSError:
            pass
        return f"cpu: {platform.processor() or platform.machine()}"
    nvidia = _first_line(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"])
    if nvidia:
        return f"nvidia {nvidia}"
    rocm = _first_line(["rocm-smi", "--showdriverversion", "--csv"])
    if rocm:
        return f"rocm {rocm}"
    try:
        return Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def device_info() -> dict[str, Any]:
    """The device the suite runs on: name, backend, driver, count, jax version, date (UTC)."""
    dev = jax.devices()[0]
    backend = jax.default_backend()
    platform_version = str(getattr(dev.client, "platform_version", ""))
    return {
        "device": str(getattr(dev, "device_kind", dev.platform)),
        "backend": backend,
        "platform_version": platform_version.strip(),
        "driver": driver_info(backend),
        "num_local_devices": jax.local_device_count(),
        "jax_version": jax.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def run_suite(
    quick: bool,
    seed: int = 0,
    progress: Progress | None = None,
    sections: tuple[str, ...] = suite.SECTIONS,
) -> dict[str, Any]:
    """Run every case of ``sections``; the raw result (device, measurements, steps, skipped) as JSON data."""
    profile = suite.size_profile(quick)
    sizes = suite.SIZES[profile]
    inputs = RandomInputs(seed, POOL_ELEMENTS[profile])
    skipped: list[dict[str, str]] = []
    todo = list(suite.cases(sizes, inputs, skipped, sections))
    dispatch_s = kernels.dispatch_overhead(inputs, sizes["repeats"])
    measurements: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    for i, (section, label, run) in enumerate(todo):
        if progress is not None:
            progress(i, len(todo), label)
        try:
            row = run()
        except Exception as exc:  # one case must not lose the others: recorded, reported, skipped
            skipped.append({"what": label, "reason": f"failed: {type(exc).__name__}: {str(exc)[:300]}"})
            continue
        (step_rows if section == "steps" else measurements).append(row)
    if progress is not None:
        progress(len(todo), len(todo), "done")
    return {
        "schema": RAW_SCHEMA,
        **device_info(),
        "quick": quick,
        "size_profile": profile,
        "sections": list(sections),
        "step_model": sizes["step_model"],
        "dispatch_s": dispatch_s,
        "measurements": measurements,
        "steps": step_rows,
        "skipped": skipped,
    }


def merge_raw(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One raw result from several runs of different sections on the same device (the first's header)."""
    devices = {(p.get("device"), p.get("backend")) for p in parts}
    if len(devices) != 1:
        raise ValueError(f"raw files come from different devices: {sorted(map(str, devices))}")
    merged = dict(parts[0])
    for key in ("measurements", "steps", "skipped", "sections"):
        merged[key] = [x for p in parts for x in p.get(key, [])]
    merged["dispatch_s"] = min(float(p.get("dispatch_s", 0.0)) for p in parts)
    return merged


def _sections(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in chosen if s not in suite.SECTIONS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"unknown section(s) {bad}; choose from {', '.join(suite.SECTIONS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """``python -m calibration.measure --out raw.json [--quick] [--seed N] [--sections a,b]``."""
    parser = argparse.ArgumentParser(prog="python -m calibration.measure", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="raw measurements JSON to write")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU-friendly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sections", type=_sections, default=suite.SECTIONS, help=", ".join(suite.SECTIONS))
    args = parser.parse_args(argv)
    info = device_info()
    print(f"device: {info['device']} ({info['backend']}, {info['driver']}, jax {info['jax_version']})")

    def show(done: int, total: int, label: str) -> None:
        print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)

    raw = run_suite(args.quick, args.seed, show, args.sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    for skip in raw["skipped"]:
        print(f"skipped {skip['what']}: {skip['reason']}")
    print(f"wrote {len(raw['measurements'])} kernel and {len(raw['steps'])} step measurements to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
