"""Sweeps from Python: spec expansion, statuses of bad points, resume, timeouts, and the Dask backend."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator import SUMMARY_KEYS, ConfigError, Scenario, sweep
from simulator.resolve import resolve
from simulator.simulate import SimulationResult, simulate
from simulator.sweeps import ResultStore, expand, load_spec, run_sweep, runner
from simulator.sweeps import worker as sweep_worker
from simulator.sweeps.backends import LocalBackend

BASE = {"model": "llama-3.1-8b", "workload": {"num_requests": 40, "output_tokens": 32}}
SMALL: dict[str, Any] = {"base": BASE, "grid": {"workload.rate_per_s": [2.0, 4.0, 8.0]}, "num_seeds": 2}
COMPARED = ["point_id", "status", "workload.rate_per_s", "seed", *SUMMARY_KEYS]


def _points(spec: dict[str, Any]) -> list[Any]:
    return expand(*load_spec(spec))


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a[COMPARED].reset_index(drop=True), b[COMPARED].reset_index(drop=True))


def test_grid_zip_random_and_seeds_multiply() -> None:
    spec = {
        "base": BASE,
        "grid": {"layout.tp": [1, 2], "precision.weights": ["bf16", "fp8", "int8"]},
        "zip": {"workload.rate_per_s": [1.0, 2.0], "scheduler.max_num_seqs": [16, 32]},
        "random": {
            "samples": 4,
            "seed": 7,
            "axes": {
                "scheduler.block_size": {"low": 8, "high": 64, "log": True},
                "scheduler.gpu_memory_utilization": {"low": 0.8, "high": 0.95},
                "scheduler.router": ["round_robin", "least_outstanding"],
            },
        },
        "num_seeds": 2,
    }
    points = _points(spec)
    assert len(points) == 2 * 3 * 2 * 4 * 2
    assert len({p.point_id for p in points}) == len(points)
    assert [p.values["seed"] for p in points[:4]] == [0, 1, 0, 1]  # seeds vary fastest
    zipped = {(p.values["workload.rate_per_s"], p.values["scheduler.max_num_seqs"]) for p in points}
    assert zipped == {(1.0, 16), (2.0, 32)}
    blocks = [p.values["scheduler.block_size"] for p in points]
    assert all(isinstance(b, int) and 8 <= b <= 64 for b in blocks) and len(set(blocks)) > 1
    utils = [p.values["scheduler.gpu_memory_utilization"] for p in points]
    assert all(0.8 <= u <= 0.95 for u in utils)
    assert all(p.scenario is not None and p.scenario.layout.tp == p.values["layout.tp"] for p in points)
    again = _points(spec)
    assert [(p.point_id, p.values) for p in again] == [(p.point_id, p.values) for p in points]
    other = _points({**spec, "random": {**spec["random"], "seed": 8}})
    assert [p.values for p in other] != [p.values for p in points]


def test_point_id_is_the_hash_of_the_resolved_scenario() -> None:
    points = _points({"base": BASE, "seeds": [3, 5]})
    assert [p.values for p in points] == [{"seed": 3}, {"seed": 5}]
    assert points[0].scenario == Scenario.from_dict(BASE, {"seed": 3})
    # the same scenario written another way is the same point
    same = _points({"base": {**BASE, "seed": 3}, "grid": {"layout.dp": [1]}})
    assert same[0].point_id == points[0].point_id


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grid": {"layout.tpp": [1]}}, "valid keys at layout: tp, pp, ep, dp, expert_skew"),
        ({"grid": {"modle": ["x"]}}, "not a scenario key"),
        ({"zip": {"layout.tp": [1, 2], "layout.dp": [1]}}, "equal lengths"),
        ({"grid": {"layout.tp": [1]}, "zip": {"layout.tp": [2]}}, "already an axis in grid"),
        ({"grid": {"layout": [1]}}, "is a group"),
        ({"grid": {"layout.tp": []}}, "at least one value"),
        ({"seeds": [1], "num_seeds": 2}, "not both"),
        ({"grid": {"layout.tp": 1}}, "valid list"),
        ({"random": {"samples": 2, "axes": {"layout.tp": {"low": 4, "high": 1}}}}, "low <= high"),
        ({"griid": {}}, "griid"),
        ({"grid": {"layout.tp": [1] * 1000, "layout.dp": [1] * 1000, "seed": [1, 2]}}, "at most 1,000,000"),
    ],
)
def test_a_malformed_spec_is_a_clear_error(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _points(spec)


def test_a_key_inside_a_non_group_field_is_left_to_the_scenario_to_judge() -> None:
    points = _points({"base": BASE, "grid": {"workload.input_tokens.low": [4]}})
    assert points[0].scenario is None and "workload.input_tokens" in (points[0].error or "")


@pytest.fixture
def flaky_simulate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """rate 4 raises a bug, rate 8 hangs; forked workers inherit the patch."""

    def fake(scenario: Scenario) -> SimulationResult:
        resolve(scenario)  # an invalid point stays invalid
        if scenario.workload.rate_per_s == 4.0:
            raise RuntimeError("a bug in one point")
        if scenario.workload.rate_per_s == 8.0:
            time.sleep(2)
        return simulate(scenario)

    monkeypatch.setattr(sweep_worker, "simulate", fake)
    monkeypatch.setattr(LocalBackend, "start_method", "fork")  # the patch lives in this process only
    yield


@pytest.mark.usefixtures("flaky_simulate")
def test_bad_points_are_recorded_and_the_others_run(tmp_path: Path) -> None:
    spec = {"base": BASE, "grid": {"workload.rate_per_s": [2.0, 4.0, 8.0], "layout.tp": [1, 3]}}
    started = time.perf_counter()
    frame = run_sweep(spec, tmp_path, workers=2, point_timeout_s=1.0)
    assert time.perf_counter() - started < 15
    keys = zip(frame["workload.rate_per_s"], frame["layout.tp"], strict=True)
    status = dict(zip(keys, frame["status"], strict=True))
    assert status == {
        (2.0, 1): "ok",
        (4.0, 1): "failed",
        (8.0, 1): "timeout",
        (2.0, 3): "invalid",
        (4.0, 3): "invalid",
        (8.0, 3): "invalid",
    }
    errors = dict(zip(frame["status"], frame["error"], strict=False))
    assert errors["failed"] == "RuntimeError: a bug in one point"
    assert "point timeout of 1 s" in errors["timeout"] and "valid tp: 1, 2, 4, 8" in errors["invalid"]
    ok = frame[frame["status"] == "ok"].iloc[0]
    assert ok["num_completed"] == 40 and ok["ttft_p99_s"] > 0 and ok["wall_s"] > 0
    assert frame.loc[frame["status"] != "ok", "ttft_p99_s"].isna().all()
    stored = ResultStore(tmp_path).read()
    assert sorted(stored["point_id"]) == sorted(frame["point_id"])


def test_results_stream_to_parquet_and_resume_skips_them(tmp_path: Path) -> None:
    full = run_sweep(SMALL, tmp_path / "full", workers=2)
    assert len(full) == 6 and (full["status"] == "ok").all()
    assert list(full["seed"]) == [0, 1, 0, 1, 0, 1]
    num_parts = len(ResultStore(tmp_path / "full").parts())  # rows are flushed as points finish
    again = run_sweep(SMALL, tmp_path / "full", workers=2, resume=True)
    assert len(ResultStore(tmp_path / "full").parts()) == num_parts  # nothing ran again
    pd.testing.assert_frame_equal(again, full)

    part = tmp_path / "part"
    first = run_sweep({**SMALL, "grid": {"workload.rate_per_s": [2.0]}}, part, workers=2)
    resumed = run_sweep(SMALL, part, workers=2, resume=True)
    _same_rows(resumed, full)
    kept = resumed.set_index("point_id").loc[first["point_id"], "wall_s"]
    assert list(kept) == list(first["wall_s"])  # the first run's rows were kept, not recomputed


def test_an_interrupted_sweep_keeps_what_finished_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt_at_rate_8(scenario: Scenario) -> SimulationResult:
        if scenario.workload.rate_per_s == 8.0:
            raise KeyboardInterrupt
        return simulate(scenario)

    monkeypatch.setattr(sweep_worker, "simulate", interrupt_at_rate_8)
    monkeypatch.setattr(LocalBackend, "start_method", "fork")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SMALL, tmp_path, workers=1)
    kept = ResultStore(tmp_path).read()
    assert len(kept) == 4 and set(kept["workload.rate_per_s"]) == {2.0, 4.0}
    monkeypatch.undo()
    resumed = run_sweep(SMALL, tmp_path, workers=1, resume=True)
    _same_rows(resumed, run_sweep(SMALL, workers=2))


def test_axis_values_that_are_not_plain_are_stored_as_json(tmp_path: Path) -> None:
    lengths = [16, {"dist": "uniform", "low": 8, "high": 32}]
    frame = run_sweep({"base": BASE, "grid": {"workload.input_tokens": lengths}}, tmp_path, workers=1)
    assert list(frame["workload.input_tokens"]) == ["16", '{"dist": "uniform", "high": 32, "low": 8}']
    assert (frame["status"] == "ok").all()


def test_a_worker_that_dies_fails_its_point_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die_at_rate_4(scenario: Scenario) -> SimulationResult:
        if scenario.workload.rate_per_s == 4.0:
            os._exit(1)
        return simulate(scenario)

    monkeypatch.setattr(sweep_worker, "simulate", die_at_rate_4)
    monkeypatch.setattr(LocalBackend, "start_method", "fork")
    frame = run_sweep({**SMALL, "num_seeds": 1}, tmp_path, workers=1)
    assert list(frame["status"]) == ["ok", "failed", "ok"]
    assert "BrokenProcessPool" in frame["error"][1]


def test_dask_cluster_gives_the_same_rows_as_local_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("dask.distributed")
    # long enough for the workers to load the compiled engine (locally in their initializer, on Dask
    # through Client.run), so that both run every point in it
    monkeypatch.setattr(runner, "COMPILED_AFTER_REQUESTS", 20)
    spec = {**SMALL, "grid": {"workload.rate_per_s": [2.0, 8.0], "layout.tp": [1, 3]}, "num_seeds": 1}
    local = run_sweep(spec, workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster:
        remote = run_sweep(spec, backend="dask", address=cluster.scheduler_address)
    assert list(local["status"]) == ["ok", "invalid", "ok", "invalid"]
    assert list(remote["engine"].dropna()) == ["compiled", "compiled"]
    pd.testing.assert_frame_equal(local.drop(columns="wall_s"), remote.drop(columns="wall_s"))


def test_dask_without_an_address_starts_a_local_cluster() -> None:
    pytest.importorskip("dask.distributed")
    spec = {"base": BASE, "grid": {"workload.rate_per_s": [2.0, 8.0]}}
    frame = sweep(spec, backend="dask", workers=1)  # a LocalCluster of one worker process
    assert list(frame["status"]) == ["ok", "ok"] and (frame["num_completed"] == 40).all()
    pd.testing.assert_frame_equal(frame.drop(columns="wall_s"), sweep(spec, workers=1).drop(columns="wall_s"))


@pytest.mark.usefixtures("flaky_simulate")
def test_dask_points_past_their_timeout_are_recorded() -> None:
    distributed = pytest.importorskip("dask.distributed")
    spec = {"base": BASE, "grid": {"workload.rate_per_s": [2.0, 8.0]}}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster:
        started = time.perf_counter()
        frame = run_sweep(spec, backend="dask", address=cluster.scheduler_address, point_timeout_s=0.5)
        assert time.perf_counter() - started < 10
    assert list(frame["status"]) == ["ok", "timeout"]
    assert "point timeout of 0.5 s" in frame["error"][1]


def test_backend_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="known backends are dask, local"):
        run_sweep(SMALL, backend="ray")
    with pytest.raises(ConfigError, match="--backend dask only"):
        run_sweep(SMALL, address="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="positive number of seconds"):
        run_sweep(SMALL, point_timeout_s=0)


def test_workers_of_a_long_sweep_load_the_compiled_engine_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # 6 points of 40 requests: short of COMPILED_AFTER_REQUESTS each, so a worker simulates them in
    # SimPy unless the sweep as a whole (per worker) repays loading the compiled engine first.
    assert all(row == "simpy" for row in run_sweep(SMALL, workers=1)["engine"])
    assert not runner._compiled_engine_pays(_points(SMALL), workers=1)
    monkeypatch.setattr(runner, "COMPILED_AFTER_REQUESTS", 100)
    assert runner._compiled_engine_pays(_points(SMALL), workers=2)  # 240 requests, 120 per worker
    assert not runner._compiled_engine_pays(_points(SMALL), workers=3)
    frame = run_sweep(SMALL, workers=2)
    assert set(frame["engine"]) == {"compiled"}
    _same_rows(frame, run_sweep(SMALL, workers=1))  # the same rows, whichever engine
