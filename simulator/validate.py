"""``validate()``: the simulator's predictions against published measurements (layer L5).

The bundled table (``simulator/measurements/mlperf.csv``, sources in its README) holds MLPerf Inference
closed-division results on the accelerators we have profiles for. For each row a scenario is built:

* model, hardware, layout (tp, ep, dp) and precision as the row states (the layout and precision are
  our reading of the submission, see the README; kv cache fp8 throughout);
* lengths: log-normal (sigma ``LENGTH_SIGMA``) around the benchmark's mean input and output tokens;
* Offline: every request at t = 0 ("burst"), as many as MLPerf's minimum run issues (loadgen sends
  expected samples/s x ``MLPERF_MIN_DURATION_S`` at once; we take the measured samples/s), at least
  ``OFFLINE_REQUESTS_PER_REPLICA`` per replica; the figure is output tokens per second, drain included
  as in the real run;
* Server: Poisson arrivals at the row's target rate; the figure is the median time per output token
  (TPOT p50) over ``SERVER_DURATION_S`` of arrivals when the row has it, else the output tokens per
  second of the steady state: decode tokens of the steps in the second half of
  ``SERVER_THROUGHPUT_DURATION_S`` of arrivals (a whole-run average would count the ramp-up and the
  drain, which for DeepSeek-R1's 3,660-token answers last minutes).

Scheduler settings are the project defaults but for the batch caps: a row's ``max_num_seqs`` and
``max_num_batched_tokens`` columns (the submission's own settings where its configuration gives them,
per replica) or ``SERVING_MAX_NUM_SEQS`` and the default token budget. A row's ``attention_dp`` column
("true") runs attention data-parallel with the experts spread (``layout.attention_dp``). No efficiency
factor was fitted to this table: the hardware profiles' factors are the only ones used.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

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
MLPERF_MIN_DURATION_S = 600.0
"""MLPerf Inference's minimum run (loadgen ``min_duration``, 10 minutes) for Offline and Server."""
SERVER_DURATION_S = 60.0
"""Arrivals of a TPOT row. Long enough: 300 s moves the Mixtral B200 row's TPOT p50 by under 1%, 600 s the
H200 Llama-2-70B row's by 3% (44.4 -> 45.7 ms)."""
SERVER_THROUGHPUT_DURATION_S = MLPERF_MIN_DURATION_S
"""Arrivals of a throughput row: MLPerf's minimum Server run."""
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
_SCHEDULER_COLUMNS = ("max_num_seqs", "max_num_batched_tokens")  # optional: "" or absent -> defaults


def _scheduler_for(row: dict[str, str]) -> dict[str, Any]:
    scheduler: dict[str, Any] = {"max_num_seqs": SERVING_MAX_NUM_SEQS, "router": "least_outstanding"}
    for column in _SCHEDULER_COLUMNS:
        if row.get(column):
            scheduler[column] = int(row[column])
    return scheduler


def _attention_dp(row: dict[str, str]) -> bool:
    return row.get("attention_dp", "").strip().lower() == "true"


def scenario_for(row: dict[str, str]) -> Scenario:
    """The scenario that reproduces one measurement row (see the module docstring)."""
    dp = int(row["dp"])
    lengths = {
        key: {"dist": "lognormal", "mean": float(row[col]), "sigma": LENGTH_SIGMA, "high": 32_768}
        for key, col in (("input_tokens", "input_tokens_mean"), ("output_tokens", "output_tokens_mean"))
    }
    workload: dict[str, Any] = dict(lengths)
    if row["scenario"] == "offline":
        samples_per_s = float(row["measured_output_tok_s"]) / float(row["output_tokens_mean"])
        num = max(OFFLINE_REQUESTS_PER_REPLICA * dp, math.ceil(samples_per_s * MLPERF_MIN_DURATION_S))
        workload |= {"arrival": "burst", "num_requests": num}
    else:
        rate = float(row["rate_per_s"])
        num = max(MIN_SERVER_REQUESTS, math.ceil(rate * _server_duration_s(row)))
        workload |= {"arrival": "poisson", "rate_per_s": rate, "num_requests": num}
    return Scenario.from_dict(
        {
            "name": row["id"],
            "model": row["model"],
            "hardware": row["hardware"],
            "layout": {
                "tp": int(row["tp"]),
                "ep": int(row["ep"]),
                "dp": dp,
                "attention_dp": _attention_dp(row),
            },
            "precision": {"weights": row["weights"], "kv_cache": row["kv_cache"]},
            "scheduler": _scheduler_for(row),
            "workload": workload,
        }
    )


def _server_duration_s(row: dict[str, str]) -> float:
    return SERVER_DURATION_S if row["measured_tpot_p50_s"] else SERVER_THROUGHPUT_DURATION_S


def steady_output_tok_s(steps: pd.DataFrame, arrivals_end_s: float) -> float:
    """Decode tokens per second of the steps that start in the second half of the arrivals,
    [arrivals_end_s / 2, arrivals_end_s) (each request's first token, made by its prefill, not counted)."""
    start = arrivals_end_s / 2.0
    window = steps[(steps["start_s"] >= start) & (steps["start_s"] < arrivals_end_s)]
    return float(window["num_decode_tokens"].sum()) / (arrivals_end_s - start)


def compare_row(row: dict[str, str]) -> Comparison:
    """Simulate one row and compare its figure with the measurement."""
    scenario = scenario_for(row)
    result = simulate(scenario)
    summary = result.summary()
    if row["scenario"] == "server" and row["measured_tpot_p50_s"]:
        metric, measured, predicted = "tpot_p50_s", float(row["measured_tpot_p50_s"]), summary["tpot_p50_s"]
    elif row["scenario"] == "server":
        metric, measured = "output_tok_s", float(row["measured_output_tok_s"])
        num_requests = scenario.workload.num_requests
        assert num_requests is not None  # scenario_for sets it
        arrivals_end_s = num_requests / float(row["rate_per_s"])
        predicted = steady_output_tok_s(result.steps, arrivals_end_s)
    else:
        metric, measured = "output_tok_s", float(row["measured_output_tok_s"])
        predicted = summary["output_throughput_tok_s"]
    return Comparison(
        id=row["id"],
        model=row["model"],
        hardware=f"{row['num_gpus']}x {row['hardware']}",
        layout=f"tp{row['tp']} ep{row['ep']} dp{row['dp']}" + (" adp" if _attention_dp(row) else ""),
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
