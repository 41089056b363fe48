"""``trilemma autoscale``: autoscalers from a YAML file compared on a scenario's day of traffic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulator.autoscaling import DEFAULT_AUTOSCALERS, load_autoscalers
from simulator.cli import main
from simulator.errors import ConfigError

DAY = """
name: day
model: llama-3.1-8b
layout: {dp: 4}
workload:
  rate_per_s: 40
  rate_profile: {slot_s: 5, factors: [0.2, 1.0, 1.0, 0.2, 0.0, 0.5]}
  num_requests: 580
  input_tokens: 256
  output_tokens: 64
slo: {ttft_p99_s: 0.5}
"""

POLICIES = """
fixed: {policy: fixed}
reactive: {policy: reactive, min_replicas: 2, interval_s: 0.5, cold_start_s: 1.0, scale_up_above: 6,
           scale_down_below: 2}
"""


def test_autoscale_command_writes_both_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "day.yaml").write_text(DAY)
    (tmp_path / "policies.yaml").write_text(POLICIES)
    args = ["autoscale", str(tmp_path / "day.yaml"), "--policies", str(tmp_path / "policies.yaml")]
    args += ["--csv", str(tmp_path / "t.csv"), "--hourly-csv", str(tmp_path / "h.csv")]
    assert main(args) == 0
    assert "day: autoscaling" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "t.csv").set_index("policy")
    assert list(table.index) == ["fixed", "reactive"]
    assert table.loc["fixed", "min_paid_replicas"] == 4
    assert table.loc["reactive", "min_paid_replicas"] >= 2
    # the reactive fleet pays for fewer replica-hours for the same requests, all served
    assert table.loc["reactive", "replica_hours"] < table.loc["fixed", "replica_hours"]
    assert (table["num_completed"] == 580).all()
    hourly = pd.read_csv(tmp_path / "h.csv")
    assert set(hourly["policy"]) == {"fixed", "reactive"}
    assert (hourly.loc[hourly["policy"] == "fixed", "mean_paid_replicas"] == 4).all()


def test_bad_policy_file_names_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "day.yaml").write_text(DAY)
    (tmp_path / "bad.yaml").write_text("steady: {policy: sometimes}\n")
    args = ["autoscale", str(tmp_path / "day.yaml"), "--policies", str(tmp_path / "bad.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "policies.steady" in err and "sometimes" in err and "'fixed', 'reactive' or 'scheduled'" in err
    assert main(["autoscale", str(tmp_path / "day.yaml"), "--policies", str(tmp_path / "none.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_load_autoscalers_defaults_and_mappings() -> None:
    assert set(load_autoscalers(None)) == set(DEFAULT_AUTOSCALERS)
    assert load_autoscalers({"f": {"policy": "fixed"}})["f"].policy == "fixed"
    with pytest.raises(ConfigError, match=r"policies\.r"):
        load_autoscalers({"r": {"min_replicas": 0}})
    with pytest.raises(ConfigError, match="at least one"):
        load_autoscalers({})
