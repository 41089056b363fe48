"""Batch parameter sweeps (layer L6): a base scenario times grid, zip, random and seed axes.

``run_sweep(spec, out_dir)`` runs every point on local processes or a Dask cluster, appends the rows
to a parquet dataset as points finish (resumable) and returns them as a DataFrame; ``expand`` lists
the points of a spec without running them. See ``simulator.sweeps.spec`` for the spec's keys.
"""

from __future__ import annotations

from simulator.sweeps.runner import run_sweep
from simulator.sweeps.spec import RandomAxes, RangeAxis, SweepPoint, SweepSpec, expand, load_spec
from simulator.sweeps.store import ResultStore
from simulator.sweeps.worker import STATUSES, run_point

sweep = run_sweep
"""``simulator.sweep(spec, out_dir=None, ...)``: the public name of ``run_sweep``."""

__all__ = [
    "STATUSES",
    "RandomAxes",
    "RangeAxis",
    "ResultStore",
    "SweepPoint",
    "SweepSpec",
    "expand",
    "load_spec",
    "run_point",
    "run_sweep",
    "sweep",
]
