"""Sweep speed: wall time of one N-point sweep on 1 worker, on every core, and on a Dask LocalCluster.

The points are small scenarios (Llama-3.1-8B on one H100, a few dozen Poisson requests) over a grid of
arrival rates times seeds: cheap enough that 1,000 of them take a minute or two on one core, so the
figure shows what the sweep machinery costs on top of the simulations (worker start, transfers, parquet).

    python tests/benchmarks/bench_sweep.py                         # 1,000 points of 50 requests
    python tests/benchmarks/bench_sweep.py --num-points 200 --num-requests 500 --workers 8

Figures are printed, not asserted: timing on a shared machine is noise-prone. Every run must give the
same rows (checked): only where they ran differs. The Dask cluster's start (worker processes importing
the simulator) is timed apart from the sweep.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from typing import Any

import pandas as pd

from simulator import SUMMARY_KEYS
from simulator.sweeps import run_sweep


def sweep_spec(num_points: int, num_requests: int) -> dict[str, Any]:
    """``num_points`` points: arrival rates 1..10 req/s times as many seeds as it takes."""
    num_rates = min(10, num_points)
    rates = [float(1 + i) for i in range(num_rates)]
    num_seeds = -(-num_points // num_rates)
    return {
        "base": {"model": "llama-3.1-8b", "workload": {"num_requests": num_requests}},
        "grid": {"workload.rate_per_s": rates},
        "num_seeds": num_seeds,
    }


def timed(label: str, spec: dict[str, Any], **options: Any) -> tuple[float, pd.DataFrame]:
    """Wall time of the sweep, its rows appended to a parquet dataset as they finish (as the CLI does)."""
    with tempfile.TemporaryDirectory() as out_dir:
        started = time.perf_counter()
        frame = run_sweep(spec, out_dir, **options)
        wall_s = time.perf_counter() - started
    num_ok = int((frame["status"] == "ok").sum())
    print(f"{label:<34} {wall_s:7.2f} s   {len(frame) / wall_s:6.2f} points/s   ({num_ok}/{len(frame)} ok)")
    return wall_s, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--num-points", type=int, default=1000)
    parser.add_argument("--num-requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: every core")
    args = parser.parse_args()
    spec = sweep_spec(args.num_points, args.num_requests)
    n = args.workers
    print(f"{args.num_points} points x {args.num_requests} requests (Llama-3.1-8B, H100), {n} workers")
    serial_s, serial = timed("local, 1 worker", spec, workers=1)
    local_s, local = timed(f"local, {n} worker processes", spec, workers=n)
    distributed = importlib.import_module("dask.distributed")
    started = time.perf_counter()
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster:
        print(f"{'(dask LocalCluster start)':<34} {time.perf_counter() - started:7.2f} s")
        address = cluster.scheduler_address
        dask_s, dask = timed(f"dask LocalCluster, {n} processes", spec, backend="dask", address=address)
    columns = ["point_id", "status", *SUMMARY_KEYS]
    for frame in (local, dask):
        pd.testing.assert_frame_equal(frame[columns], serial[columns])
    mean_point_s = float(serial["wall_s"].mean())
    print(f"mean point: {mean_point_s * 1e3:.0f} ms of simulation; sum {serial['wall_s'].sum():.2f} s")
    local_x, dask_x = serial_s / local_s, serial_s / dask_s
    print(f"speed-up over 1 worker: local x{local_x:.2f}, dask x{dask_x:.2f} (ideal x{n}; dask: start apart)")


if __name__ == "__main__":
    main()
