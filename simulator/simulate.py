"""``simulate(scenario)``: the one call from a scenario to its result (layer L5)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.config import Scenario
from simulator.engine import RunRecords, run_engine
from simulator.metrics import requests_frame, steps_frame, summarize
from simulator.resolve import ResolvedScenario, resolve
from simulator.workload import RequestTable, build_workload


@dataclass(eq=False)
class SimulationResult:
    """A finished run: the scenario, what it resolved to, and its records.

    ``requests`` and ``steps`` are DataFrames (built on first use); ``summary()`` is a flat dict.
    """

    scenario: Scenario
    resolved: ResolvedScenario
    records: RunRecords
    wall_s: float = 0.0
    _summary: dict[str, Any] | None = field(default=None, repr=False)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request (see ``simulator.metrics.requests_frame`` for the columns)."""
        return requests_frame(self.records)

    @cached_property
    def steps(self) -> pd.DataFrame:
        """One row per replica step (see ``simulator.metrics.steps_frame``)."""
        return steps_frame(self.records)

    def summary(self) -> dict[str, Any]:
        """Throughput, latency percentiles, utilization (keys in ``simulator.metrics.SUMMARY_KEYS``)."""
        if self._summary is None:
            self._summary = summarize(self.resolved, self.records)
        return dict(self._summary)

    def save(self, out_dir: str | Path) -> Path:
        """Write requests.parquet, steps.parquet, summary.json and the resolved scenario.yaml."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.requests.to_parquet(out / "requests.parquet", index=False)
        self.steps.to_parquet(out / "steps.parquet", index=False)
        (out / "summary.json").write_text(json.dumps(_json_safe(self.summary()), indent=2) + "\n")
        (out / "scenario.yaml").write_text(self.scenario.to_yaml())
        return out


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    """NaN (a percentile of nothing) becomes null, which JSON can hold."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def simulate(scenario: Scenario, requests: RequestTable | None = None) -> SimulationResult:
    """Resolve the scenario, build its workload (unless ``requests`` is given), run it, return records.

    Raises ConfigError / UnknownNameError / DoesNotFitError / DataFileError (all SimulatorError) before
    any simulated time passes when the scenario is invalid.
    """
    import time

    started = time.perf_counter()
    resolved = resolve(scenario)
    table = requests if requests is not None else build_workload(scenario.workload, scenario.seed)
    records = run_engine(resolved, table)
    return SimulationResult(scenario, resolved, records, wall_s=time.perf_counter() - started)
