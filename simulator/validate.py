"""``validate()``: the simulator's predictions against published measurements (layer L5).

The bundled table (``simulator/measurements/mlperf.csv``, sources in its README) holds MLPerf Inference
closed-division results on the accelerators we have profiles for. For each row a scenario is built:

* model, hardware, layout (tp, ep, dp) and precision as the row states (the layout and precision are
  our reading of the submission, see the README; kv cache fp8 throughout);
* lengths: log-normal (sigma ``LENGTH_SIGMA``) around the benchmark's mean input and output tokens;
* Offline: every request at t = 0 ("burst"), ``OFFLINE_REQUESTS_PER_REPLICA`` per replica; the figure is
  output tokens per second;
* Server: Poisson arrivals at the row's target rate for ``SERVER_DURATION_S``; the figure is the median
  time per output token (TPOT p50) when the row has it, else output tokens per second.

Scheduler settings are the project defaults but for ``max_num_seqs`` (``SERVING_MAX_NUM_SEQS``). No
efficiency factor was fitted to this table: the hardware profiles' factors are the only ones used.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.config import Scenario
from simulator.datafiles import read_text_bounded
from simulator.errors import DataFileError
from simulator.simulate import simulate

MEASUREMENTS_PATH = Path(__file__).resolve().parent / "measurements" / "mlperf.csv"
LENGTH_SIGMA = 0.5
"""Spread of the log-normal lengths (ASSUMED: the table gives means only)."""
OFFLINE_REQUESTS_PER_REPLICA = 4096
"""Enough for a steady state: at 1024 the ramp-up and the drain of the last long requests cut the
throughput of the 8xH100 Llama-2-70B row by 30% (16.5k vs 23.5k tok/s)."""
SERVER_DURATION_S = 60.0
MIN_SERVER_REQUESTS = 200
SERVING_MAX_NUM_SEQS = 512
"""Batch cap per replica. ASSUMED: TensorRT-LLM's MLPerf configs run batches of several hundred."""
TOLERANCE_MEDIAN_ABS_ERROR_FRAC = 0.25
"""The regression bound on the median absolute error (see tests/test_validate.py)."""

_COLUMNS = (
    "id", "scenario", "model", "hardware", "num_gpus", "tp", "ep", "dp", "weights", "kv_cache",
    "input_tokens_mean", "output_tokens_mean", "rate_per_s", "measured_output_tok_s",
    "measured_tpot_p50_s", "source",
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """One row: what was measured, what the simulator predicts, and the relative error."""

    id: str
    model: str
    hardware: str
    layout: str
    precision: str
    metric: str  # output_tok_s or tpot_p50_s
    measured: float
    predicted: float

    @property
    def error_frac(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted - self.measured) / self.measured


def load_measurements(path: Path = MEASUREMENTS_PATH) -> list[dict[str, str]]:
    """The table's rows (a DataFileError names the row and column of a malformed one)."""
    rows = list(csv.DictReader(read_text_bounded(path).splitlines()))
    for number, row in enumerate(rows, start=2):
        missing = [c for c in _COLUMNS if c not in row or (row[c] == "" and c not in _OPTIONAL)]
        if missing:
            raise DataFileError(path, f"row {number}: missing {', '.join(missing)}")
    return rows


_OPTIONAL = {"rate_per_s", "measured_tpot_p50_s"}


def scenario_for(row: dict[str, str]) -> Scenario:
    """The scenario that reproduces one measurement row (see the module docstring)."""
    dp = int(row["dp"])
    lengths = {
        key: {"dist": "lognormal", "mean": float(row[col]), "sigma": LENGTH_SIGMA, "high": 32_768}
        for key, col in (("input_tokens", "input_tokens_mean"), ("output_tokens", "output_tokens_mean"))
    }
    workload: dict[str, Any] = dict(lengths)
    if row["scenario"] == "offline":
        workload |= {"arrival": "burst", "num_requests": OFFLINE_REQUESTS_PER_REPLICA * dp}
    else:
        rate = float(row["rate_per_s"])
        num = max(MIN_SERVER_REQUESTS, math.ceil(rate * SERVER_DURATION_S))
        workload |= {"arrival": "poisson", "rate_per_s": rate, "num_requests": num}
    return Scenario.from_dict(
        {
            "name": row["id"],
            "model": row["model"],
            "hardware": row["hardware"],
            "layout": {"tp": int(row["tp"]), "ep": int(row["ep"]), "dp": dp},
            "precision": {"weights": row["weights"], "kv_cache": row["kv_cache"]},
            "scheduler": {"max_num_seqs": SERVING_MAX_NUM_SEQS, "router": "least_outstanding"},
            "workload": workload,
        }
    )


def compare_row(row: dict[str, str]) -> Comparison:
    """Simulate one row and compare its figure with the measurement."""
    summary = simulate(scenario_for(row)).summary()
    if row["scenario"] == "server" and row["measured_tpot_p50_s"]:
        metric, measured, predicted = "tpot_p50_s", float(row["measured_tpot_p50_s"]), summary["tpot_p50_s"]
    else:
        metric, measured = "output_tok_s", float(row["measured_output_tok_s"])
        predicted = summary["output_throughput_tok_s"]
    return Comparison(
        id=row["id"],
        model=row["model"],
        hardware=f"{row['num_gpus']}x {row['hardware']}",
        layout=f"tp{row['tp']} ep{row['ep']} dp{row['dp']}",
        precision=f"{row['weights']}/{row['kv_cache']}",
        metric=metric,
        measured=measured,
        predicted=float(predicted),
    )


def validate(rows: list[dict[str, str]] | None = None) -> list[Comparison]:
    """Every row of the bundled table (or ``rows``) simulated and compared."""
    return [compare_row(r) for r in (load_measurements() if rows is None else rows)]


def median_abs_error_frac(comparisons: list[Comparison]) -> float:
    """Median of |predicted - measured| / measured."""
    return statistics.median(abs(c.error_frac) for c in comparisons)
