"""``trilemma curve | knee | compare``: tables, CSV, HTML reports, and exit code 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator import Scenario
from simulator.cli import main
from simulator.metrics.report import calibration_status

SMALL = {
    "name": "small-8b",
    "model": "llama-3.1-8b",
    "workload": {"num_requests": 100, "input_tokens": 256, "output_tokens": 32, "rate_per_s": 8},
    "slo": {"ttft_p99_s": 0.05, "itl_p99_s": 0.04},
}

CLOSED_LOOP = ["--set", "workload.arrival=concurrency", "--set", "workload.concurrency=2"]
CLOSED_LOOP += ["--set", "workload.trace=null"]


def _write(tmp_path: Path, name: str, data: dict[str, object]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_curve_writes_csv_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _write(tmp_path, "small.yaml", SMALL)
    csv, report = tmp_path / "curve.csv", tmp_path / "curve.html"
    code = main(["curve", str(scenario), "--rates", "4:64:3", "--csv", str(csv), "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "latency-load curve" in out and "ttft_p99" in out
    frame = pd.read_csv(csv)
    assert list(frame["rate_per_s"]) == [4.0, 34.0, 64.0] and "goodput_rps" in frame
    page = report.read_text()
    assert 'id="trilemma-figure-0"' in page and "name: small-8b" in page
    source = calibration_status([Scenario.from_yaml(scenario)])["h100-sxm"]  # None: spec-only
    assert ("h100-sxm</b>: calibrated" if source else "h100-sxm</b>: spec-only") in page


def test_curve_without_a_file_plays_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["curve", "--rates", "16", "--set", "workload.num_requests=40", "--set", "layout.dp=1"])
    assert code == 0
    assert "default-llama70b-fp8-h100" in capsys.readouterr().out


def test_knee_prints_knee_goodput_b_sat_cost_and_sizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = _write(tmp_path, "small.yaml", SMALL)
    cost = _write(tmp_path, "cost.yaml", {"node_price_usd": 200000, "engineering_usd": 0})
    report = tmp_path / "knee.html"
    args = ["knee", str(scenario), "--rel-tol", "0.25", "--peak-rate", "100", "--cost", str(cost)]
    code = main([*args, "--cost-set", "usd_per_kwh=0.2", "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    for text in ("knee:", "goodput at the knee", "B_sat", "per million output tokens", "replicas for 100"):
        assert text in out
    assert "engineering 0.000" in out
    page = report.read_text()
    assert 'id="trilemma-figure-0"' in page and "knee:" in page and "model: llama-3.1-8b" in page


def test_compare_marks_the_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bf16 = _write(tmp_path, "bf16.yaml", SMALL)
    fp8 = _write(tmp_path, "fp8.yaml", {**SMALL, "name": "scenario", "precision": {"weights": "fp8"}})
    csv, report = tmp_path / "cmp.csv", tmp_path / "cmp.html"
    code = main(["compare", str(bf16), str(fp8), "--csv", str(csv), "--report", str(report)])
    assert code == 0
    frame = pd.read_csv(csv)
    assert list(frame["name"]) == ["small-8b", "fp8"]  # an unnamed scenario takes its file's name
    assert frame["pareto"].any() and (frame["cost_usd_per_mtok"] > 0).all()
    assert "$/Mtok" in capsys.readouterr().out
    page = report.read_text()
    assert 'id="trilemma-figure-0"' in page and "Pareto front" in page and "<h3>fp8</h3>" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["curve", "--rates", "1:x:3"], "--rates"),
        (["curve", "--rates", "0"], "--rates"),
        (["curve", "--rates", "4", "--set", "workload.bogus=1"], "workload.bogus"),
        (["knee", "--set", "slo.ttft_p99_s=-1"], "slo.ttft_p99_s"),
        (["knee", "--set", "slo.goodput_frac=1.5"], "goodput_frac"),
        (["knee", "--set", "slo.ttft_p99_s=null", "--set", "slo.itl_p99_s=null"], "set at least one of slo"),
        (["knee", "--cost-set", "node_price=1"], "node_price"),
        (["curve", "--rates", "4", *CLOSED_LOOP], "rate sweep"),
    ],
)
def test_bad_input_exits_2_with_one_paragraph(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_compare_bad_latency_key_and_missing_file_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = _write(tmp_path, "small.yaml", SMALL)
    assert main(["compare", str(scenario), "--latency", "ttft_p42_s"]) == 2
    assert "latency_key" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
