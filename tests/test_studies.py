"""Studies: rate parsing, the latency-load curve on a real small scenario, compare, figures and the report."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest

from simulator import Scenario, simulate
from simulator.errors import ConfigError
from simulator.hardware import calibration as calibration_module
from simulator.metrics.figures import MAX_POINTS, _thin, compare_figure, curve_figure, knee_figure, run_figure
from simulator.metrics.report import calibration_status, display_frame, report_html, scenario_report
from simulator.studies import LATENCY_KEYS, compare, curve, pareto_front, parse_rates

SMALL = Scenario(model="llama-3.1-8b", name="small-8b").with_updates(
    {
        "workload.num_requests": 120,
        "workload.input_tokens": 256,
        "workload.output_tokens": 32,
        "slo.ttft_p99_s": 0.05,
        "slo.itl_p99_s": 0.04,
    }
)


@pytest.fixture(scope="module")
def small_curve() -> pd.DataFrame:
    return curve(SMALL, [160.0, 5.0, 40.0])


def test_parse_rates() -> None:
    rates = parse_rates("1:40:20")
    assert len(rates) == 20 and rates[0] == 1 and rates[-1] == 40
    assert rates[1] - rates[0] == pytest.approx(39 / 19)
    assert parse_rates("2,4,8.5") == (2.0, 4.0, 8.5)
    assert parse_rates("3") == (3.0,)


@pytest.mark.parametrize(
    "text", ["", "a", "0:3", "5:1:3", "1:2:0", "1:2:500", "1,-2", "nan", "1,inf", "1:2:x"]
)
def test_parse_rates_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--rates"):
        parse_rates(text)


def test_curve_on_a_real_small_scenario(small_curve: pd.DataFrame) -> None:
    frame = small_curve
    assert list(frame["rate_per_s"]) == [5.0, 40.0, 160.0]
    assert set(LATENCY_KEYS) & set(frame.columns) >= {"ttft_p99_s", "itl_p99_s", "e2e_p50_s"}
    ttft = list(frame["ttft_p99_s"])
    assert all(b >= a * 0.9 for a, b in itertools.pairwise(ttft))  # non-decreasing, roughly
    assert ttft[-1] > 2 * ttft[0]  # overload shows up
    thru = list(frame["request_throughput_rps"])
    assert thru[0] < thru[1] < thru[2]
    assert list(frame["meets_slo"]) == [True, True, False]
    assert all(frame["goodput_rps"] <= frame["request_throughput_rps"] + 1e-9)


def test_curve_rejects_a_closed_loop_workload() -> None:
    closed = SMALL.with_updates({"workload.arrival": "concurrency", "workload.concurrency": 4})
    with pytest.raises(ConfigError, match="rate sweep"):
        curve(closed, [1.0])


def test_pareto_front() -> None:
    # (throughput, latency): higher throughput and lower latency are better
    assert pareto_front([10, 20, 15, 20], [1.0, 2.0, 3.0, 2.5]) == [True, True, False, False]
    assert pareto_front([5, 5], [1.0, 1.0]) == [True, True]  # ties do not dominate each other
    assert pareto_front([5, math.nan], [1.0, 1.0]) == [True, False]


def test_compare_two_precisions() -> None:
    fp8 = SMALL.with_updates({"precision.weights": "fp8", "name": "small-8b-fp8"})
    frame = compare([SMALL, fp8])
    assert list(frame["name"]) == ["small-8b", "small-8b-fp8"]
    assert (frame["cost_usd_per_mtok"] > 0).all() and (frame["output_tok_s_per_w"] > 0).all()
    parts = frame[["capital_usd_per_mtok", "operations_usd_per_mtok", "idle_usd_per_mtok"]].sum(axis=1)
    assert (parts + frame["engineering_usd_per_mtok"]).tolist() == pytest.approx(
        frame["cost_usd_per_mtok"].tolist()
    )
    # FP8 weights stream half the bytes: lower latency at the same offered load, on the front
    assert frame.loc[1, "e2e_p99_s"] < frame.loc[0, "e2e_p99_s"]
    assert bool(frame.loc[1, "pareto"])
    with pytest.raises(ConfigError, match="latency_key"):
        compare([SMALL], latency_key="ttft_p42_s")


def test_report_has_the_figures_the_table_and_the_scenario(
    small_curve: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = [curve_figure(small_curve, SMALL.slo), knee_figure(_checks(), 4.0, SMALL.slo)]
    page = report_html(
        "Curve: small-8b", figures, small_curve, {"small-8b": SMALL.to_yaml()}, {"h100-sxm": None}
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'id="trilemma-figure-0"' in page and 'id="trilemma-figure-1"' in page
    assert page.count("plotly.js v") == 1 and '<script src="http' not in page  # inlined once, no CDN
    assert "model: llama-3.1-8b" in page and "ttft_p99_ms" in page
    assert "h100-sxm</b>: spec-only" in page


def _checks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rate_per_s": [2.0, 4.0, 8.0],
            "meets_slo": [True, True, False],
            "goodput_rps": [2.0, 4.0, 5.0],
            "failed": ["", "", "ttft_p99_s"],
            "ttft_p99_s": [0.01, 0.02, 0.5],
            "itl_p99_s": [0.01, 0.01, 0.02],
            "e2e_p99_s": [0.3, 0.4, 1.5],
        }
    )


def test_compare_figure_marks_the_front() -> None:
    frame = pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "output_tok_s_per_gpu": [100.0, 200.0, 150.0],
            "e2e_p99_s": [1.0, 2.0, 3.0],
            "cost_usd_per_mtok": [1.0, 0.5, 0.8],
            "pareto": [True, True, False],
        }
    )
    fig = compare_figure(frame)
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [100.0, 200.0] and list(front.y) == [1000.0, 2000.0]
    assert fig.layout.yaxis.type == "log"


def test_calibration_status_follows_the_cost_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration_module, "calibration_dir", lambda: tmp_path)  # no tables
    b200 = SMALL.with_updates({"hardware": "b200"})
    assert calibration_status([SMALL, b200]) == {"h100-sxm": None, "b200": None}
    page = scenario_report("t", [], _checks(), [SMALL])
    assert "h100-sxm</b>: spec-only" in page
    page = report_html("t", [], _checks(), {}, {"h100-sxm": "jax micro-benchmarks on an H100"})
    assert "h100-sxm</b>: calibrated" in page and "jax micro-benchmarks on an H100" in page


def test_run_figure_thins_long_runs() -> None:
    result = simulate(SMALL.with_updates({"layout.dp": 2}))
    fig = run_figure(result.requests, result.steps)
    names = [t.name for t in fig.data]
    assert names == ["TTFT", "E2E", "replica 0", "replica 1"]
    assert len(fig.data[0].x) == (result.requests["status"] == "finished").sum()
    many = pd.DataFrame({"x": range(10 * MAX_POINTS + 3)})
    assert len(_thin(many)) <= MAX_POINTS


def test_display_frame_converts_units() -> None:
    shown = display_frame(_checks())
    assert "ttft_p99_ms" in shown and "rate_per_s" in shown and shown["ttft_p99_ms"].iloc[2] == 500.0
