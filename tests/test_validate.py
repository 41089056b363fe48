"""``trilemma validate``: the bundled MLPerf table, the scenarios built from it, and a regression bound.

Tolerance, stated: on the offline rows below (one per model and accelerator family, ~3 s each) the
median absolute error of the predicted output tokens per second must stay under
``TOLERANCE_MEDIAN_ABS_ERROR_FRAC`` (0.25; 14% when written) and every row within a factor of two.
The full table's figures (``trilemma validate``) are in the README; at the time of writing the offline
median is 14% and the server TPOT median 75% (see README, "Validation against MLPerf").
"""

from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.validate import (
    TOLERANCE_MEDIAN_ABS_ERROR_FRAC,
    compare_row,
    load_measurements,
    median_abs_error_frac,
    scenario_for,
)

REGRESSION_ROWS = (
    "v5.0-dgx-h100-h100-sxm-80gbx8-trt-llama2-70b-99-offline",
    "v5.0-h200-sxm-141gbx8-trt-llama2-70b-99-offline",
    "v4.1-8xmi300x-2xepyc-9374f-llama2-70b-99-offline",
    "v5.0-h200-sxm-141gbx8-trt-mixtral-8x7b-offline",
    "v5.0-h200-sxm-141gbx8-trt-llama3-1-405b-offline",
    "v6.1-b300-sxm-270gbx8-trt-llama2-70b-99.9-offline",
)


def _row(row_id: str) -> dict[str, str]:
    return next(r for r in load_measurements() if r["id"] == row_id)


def test_table_rows_are_complete_and_sourced() -> None:
    rows = load_measurements()
    assert len(rows) == 32
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["source"].startswith("github.com/") for r in rows)
    assert {r["hardware"] for r in rows} == {"h100-sxm", "h200-sxm", "b200", "b300", "mi300x"}


def test_offline_is_a_burst_and_server_is_poisson_at_the_stated_rate() -> None:
    offline = scenario_for(_row("v4.0-dgx-h100-h100-sxm-80gbx8-trt-llama2-70b-99.9-offline"))
    assert offline.workload.arrival == "burst"
    assert (offline.layout.tp, offline.layout.dp, offline.precision.weights) == (2, 4, "fp8")
    server = scenario_for(_row("v4.0-dgx-h100-h100-sxm-80gbx8-trt-llama2-70b-99.9-server"))
    assert server.workload.arrival == "poisson" and server.workload.rate_per_s == 71.2
    deepseek = scenario_for(_row("v6.1-b300-sxm-270gbx8-trt-deepseek-r1-offline"))
    assert (deepseek.model, deepseek.layout.ep, deepseek.precision.weights) == ("deepseek-v3", 8, "fp4")


def test_offline_throughput_regression() -> None:
    results = [compare_row(_row(r)) for r in REGRESSION_ROWS]
    for c in results:
        print(f"{c.id}: measured {c.measured:,.0f} predicted {c.predicted:,.0f} ({c.error_frac:+.0%})")
        assert 0.5 < c.predicted / c.measured < 2.0, c.id
    assert median_abs_error_frac(results) < TOLERANCE_MEDIAN_ABS_ERROR_FRAC


def test_validate_cli_prints_the_table_and_the_median(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--only", "b200-sxm-180gbx1-trt-llama2-70b-99-offline"]) == 0
    out = capsys.readouterr().out
    assert "11,264" in out and "median absolute error, all 1 rows" in out
    assert main(["validate", "--only", "no-such-row"]) == 0
