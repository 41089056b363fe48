"""The calibration suite on this machine's CPU (JAX): the quick suite runs, the measuring half stays free
of the simulator's dependencies, a calibrated CPU profile predicts its own whole steps better than the
spec-only one, and ``trilemma calibrate`` fits a raw file end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")

from calibration.evaluate import calibrate, error_summary
from calibration.measure import run_suite
from simulator.cli import main
from simulator.hardware import load_hardware
from simulator.hardware.calibration import load_calibration

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    calls: list[tuple[int, int]] = []
    data = run_suite(quick=True, seed=1, progress=lambda done, total, label: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == len(data["measurements"]) + len(data["steps"])
    return data


def test_the_quick_suite_measures_every_op_class(raw: dict[str, Any]) -> None:
    classes = {m["op_class"] for m in raw["measurements"]}
    assert classes == {"gemm", "attention_prefill", "attention_decode", "elementwise"}
    assert all(
        m["time_s"] > 0 and m["repeats"] >= 5 and m["min_s"] <= m["time_s"] for m in raw["measurements"]
    )
    assert {s["kind"] for s in raw["steps"]} == {"prefill", "decode"} and all(
        s["time_s"] > 0 for s in raw["steps"]
    )
    assert raw["backend"] == "cpu" and raw["jax_version"] and raw["date"].endswith("Z")
    skipped = {s["what"]: s["reason"] for s in raw["skipped"]}
    assert "fp8" in skipped["gemm fp8"] or "cpu" in skipped["gemm fp8"]
    assert "one local device" in skipped["allreduce"]
    json.dumps(raw)  # plain JSON data


def test_the_measuring_half_imports_only_jax_numpy_and_the_standard_library() -> None:
    code = (
        "import sys, calibration.measure, calibration.kernels, calibration.steps, calibration.timing\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'simpy', 'plotly', 'simulator', 'pandas', 'yaml', 'typer', 'rich'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_calibrated_cpu_profile_predicts_its_own_steps_better(raw: dict[str, Any]) -> None:
    result = calibrate(raw, None)
    assert result.hardware_is_new and result.hardware.name.startswith("cpu-")
    assert result.table.profile == result.hardware.name
    summary = error_summary(result.steps)
    print("\n" + "\n".join(f"{r.label}: {r.before_pct:.0f}% -> {r.after_pct:.0f}%" for r in result.steps))
    assert summary["median_after_pct"] < summary["median_before_pct"]
    assert summary["median_after_pct"] < 60.0


def test_the_calibrate_command_fits_a_raw_file(raw: dict[str, Any], tmp_path: Path) -> None:
    raw_path = tmp_path / "raw.json"
    raw_path.write_text(json.dumps(raw), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["calibrate", "--raw", str(raw_path), "--out", str(out), "--profile", "cpu-test"]) == 0
    table = load_calibration(out / "cpu-test.json")
    hw = load_hardware(out / "cpu-test.yaml")
    assert table.profile == hw.name == "cpu-test" and table.backend == "cpu"
    assert hw.peak_flops_per_s["bf16"] == table.peak_flops_per_s["bf16"]
    assert len(table.measurements) == len(raw["measurements"])


def test_the_calibrate_command_rejects_a_partial_raw_file(raw: dict[str, Any], tmp_path: Path) -> None:
    bad = {k: v for k, v in raw.items() if k != "steps"}
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    assert main(["calibrate", "--raw", str(path), "--out", str(tmp_path)]) == 2
    bad = {**raw, "measurements": [{**raw["measurements"][0], "time_s": 0}]}
    path.write_text(json.dumps(bad), encoding="utf-8")
    assert main(["calibrate", "--raw", str(path), "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("*.yaml"))


def test_the_fit_runs_alone_as_a_module(raw: dict[str, Any], tmp_path: Path) -> None:
    raw_path = tmp_path / "raw.json"
    raw_path.write_text(json.dumps(raw), encoding="utf-8")
    cmd = [sys.executable, "-m", "calibration.fit", str(raw_path), "--out", str(tmp_path / "fit")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "median |error|" in out.stdout and len(list((tmp_path / "fit").glob("cpu-*.json"))) == 1
