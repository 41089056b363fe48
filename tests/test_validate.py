"""``trilemma validate``: the bundled MLPerf table, the scenarios built from it, and a regression bound.

Tolerance, stated: on the offline rows below (one per model and accelerator family, ~6 s each) the
median absolute error of the predicted output tokens per second must stay under
``TOLERANCE_MEDIAN_ABS_ERROR_FRAC`` (0.25; 16% when written) and every row within a factor of two.
The full table's figures (``trilemma validate``) are in the README (see "Validation against MLPerf"):
the Server rows run at MLPerf's near-saturation rates, where TPOT depends steeply on the load, and
are predicted 2-4x too short; at the interactive rate (about 60% of the Server load) the H200 row is
within 25%, which is kept here.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.cli import main
from simulator.validate import (
    MLPERF_MIN_DURATION_S,
    TOLERANCE_MEDIAN_ABS_ERROR_FRAC,
    compare_row,
    load_measurements,
    median_abs_error_frac,
    scenario_for,
    steady_output_tok_s,
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
    assert len(rows) == 34
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
    assert deepseek.layout.attention_dp and deepseek.scheduler.max_num_seqs == 3072
    # as many samples as MLPerf's 10-minute minimum run issues: 70,132 tok/s / 3,660 tok x 600 s
    assert deepseek.workload.num_requests == pytest.approx(70_132.3 / 3660 * MLPERF_MIN_DURATION_S, abs=1)
    assert offline.scheduler.max_num_seqs == 896 and server.scheduler.max_num_seqs == 1024


def test_server_throughput_is_the_steady_window() -> None:
    """Steps starting in the second half of the arrivals count; the ramp-up and the drain do not."""
    steps = pd.DataFrame({"start_s": [1.0, 5.0, 9.0, 12.0], "num_decode_tokens": [100, 40, 60, 500]})
    assert steady_output_tok_s(steps, arrivals_end_s=10.0) == pytest.approx((40 + 60) / 5.0)


def test_tpot_at_moderate_load_on_h200() -> None:
    """MLPerf's interactive rate for Llama-2-70B on 8xH200 (60% of the Server rate): TPOT p50 33.75 ms."""
    c = compare_row(_row("v5.0-h200-sxm-141gbx8-trt-llama2-70b-interactive-99.9-server"))
    assert c.metric == "tpot_p50_s"
    assert abs(c.error_frac) < 0.25


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
