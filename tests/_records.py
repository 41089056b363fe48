"""Comparing two runs' records: the engines (SimPy step by step, decode runs, compiled) must agree."""

from __future__ import annotations

from typing import Any

import pandas as pd

from simulator.config import Scenario
from simulator.metrics import SUMMARY_KEYS
from simulator.simulate import SimulationResult, simulate

ENGINE_WORKLOADS: list[dict[str, Any]] = [
    {"arrival": "trace", "trace": "azure-conv-2023", "num_requests": 300, "rate_per_s": 3.0},
    {"arrival": "poisson", "rate_per_s": 20.0, "num_requests": 300},
    {"arrival": "concurrency", "concurrency": 6, "num_requests": 120, "output_tokens": 64},
    {"arrival": "burst", "num_requests": 60, "output_tokens": {"dist": "uniform", "low": 1, "high": 90}},
]
"""Workloads every engine must play as the step-by-step one does: a trace, Poisson, closed loop, burst."""


def step_and_fast(data: dict[str, Any]) -> tuple[SimulationResult, SimulationResult]:
    """The scenario ``data`` simulated step by step, and in fast mode."""
    step = simulate(Scenario.from_dict(data, {"scheduler.fast_mode": False}))
    fast = simulate(Scenario.from_dict(data, {"scheduler.fast_mode": True}))
    return step, fast


def assert_same_records(a: SimulationResult, b: SimulationResult, gaps_in_order: bool = True) -> None:
    """Request and step tables, inter-token gaps, KV peaks, end time and summary keys all equal.

    ``gaps_in_order=False``: the same (gap, count) pairs in any order (the SimPy engine's decode runs
    record a run's gaps when it is applied, after other replicas' steps that ended meanwhile)."""
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.steps, b.steps)
    gaps_a = list(zip(a.records.itl.gap_s, a.records.itl.count, strict=True))
    gaps_b = list(zip(b.records.itl.gap_s, b.records.itl.count, strict=True))
    assert gaps_a == gaps_b if gaps_in_order else sorted(gaps_a) == sorted(gaps_b)
    assert a.records.kv_peak_used_blocks == b.records.kv_peak_used_blocks
    assert a.records.end_s == b.records.end_s
    s, f = a.summary(), b.summary()
    for key in SUMMARY_KEYS:
        assert s[key] == f[key] or (s[key] != s[key] and f[key] != f[key]), key
