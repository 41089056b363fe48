"""The `trilemma` command: results on disk, readable errors with exit code 2, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator import SUMMARY_KEYS, Scenario
from simulator.cli import main, parse_overrides

SMALL = [
    "--set",
    "workload.num_requests=60",
    "--set",
    "layout.dp=2",
]


def test_run_default_writes_results_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["run", *SMALL, "--json", str(tmp_path / "s.json"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TTFT p50 / p90 / p99" in printed and " ms" in printed
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["num_completed"] + summary["num_rejected"] == summary["num_requests"] == 60
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 60 and {"ttft_s", "e2e_s", "status", "replica"} <= set(requests.columns)
    assert json.loads((out / "summary.json").read_text())["num_requests"] == 60
    resolved = Scenario.from_yaml(out / "scenario.yaml")
    assert resolved.layout.dp == 2 and resolved.workload.num_requests == 60
    assert resolved.model == "llama-3.1-70b" and resolved.precision.weights == "fp8"


def test_run_a_scenario_file_with_relative_trace_path(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n0.0,100,5\n0.5,200,7\n1.0,50,3\n"
    )
    scenario = {
        "model": "llama-3.1-8b",
        "workload": {"arrival": "trace", "trace": "t.csv"},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    code = main(["run", str(tmp_path / "s.yaml"), "--quiet", "--json", str(tmp_path / "out.json")])
    assert code == 0
    assert json.loads((tmp_path / "out.json").read_text())["num_completed"] == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "model=gpt-7"], "known names are deepseek-v3, gpt-oss-120b, llama-2-70b"),
        (["--set", "hardware=tpu-v9"], "h100-sxm"),
        (["--set", "layout.tp=3"], "valid tp: 1, 2, 4, 8"),
        (["--set", "workload.rate_per_s=-2"], "workload.rate_per_s = -2"),
        (["--set", "workload.rte=2"], "workload.rte is not a scenario key"),
        (["--set", "scheduler.policy=magic"], "scheduler.policy = 'magic'"),
        (["--set", "model=llama-3.1-405b", "--set", "layout.tp=1"], "does not fit"),
        (["--set", "layout.tp"], "dotted.key=value"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_code_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert "Traceback" not in err


def test_malformed_yaml_and_bad_trace_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    assert main(["run", str(tmp_path / "bad.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0.0,100,5\n0.5,lots,7\n")
    (tmp_path / "s.yaml").write_text("model: llama-3.1-8b\nworkload: {arrival: trace, trace: t.csv}\n")
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert "t.csv" in err and "row" in err and "lots" in err


def test_catalog_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hardware", "list"]) == 0
    assert "mi300x" in capsys.readouterr().out
    assert main(["hardware", "show", "h200-sxm"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["hbm_bytes"] == pytest.approx(141e9)
    assert main(["models", "list"]) == 0
    assert "llama-3.1-405b" in capsys.readouterr().out
    assert main(["models", "show", "llama-3.1-8b"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["num_params"] == pytest.approx(8.03e9, rel=0.01)
    assert main(["traces", "list"]) == 0
    assert "azure-conv-2023" in capsys.readouterr().out
    assert main(["models", "show", "nope"]) == 2


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_set_values_are_yaml_typed() -> None:
    assert parse_overrides(["layout.tp=4", "workload.rate_per_s=2.5", "precision.weights=fp8", "x=null"]) == {
        "layout.tp": 4,
        "workload.rate_per_s": 2.5,
        "precision.weights": "fp8",
        "x": None,
    }
