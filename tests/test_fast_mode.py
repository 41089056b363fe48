"""Fast mode (runs of decode steps priced at once) gives exactly the step-by-step engine's records."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from _records import ENGINE_WORKLOADS, assert_same_records, step_and_fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine import decode_run, loop
from simulator.step_cost import CostModel


@pytest.fixture(autouse=True)
def _simpy_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the SimPy engine's decode runs: the compiled engine stays out
    (``tests/test_compiled_engine.py`` compares it with step mode)."""
    monkeypatch.setattr(loop, "use_compiled_engine", lambda resolved, requests: False)


def _runs_priced(patch: pytest.MonkeyPatch, compile_after: int | None, first_run_steps: int) -> None:
    """Price runs through ``CostModel.step`` (``compile_after`` None), or in numba once that many steps
    were priced in Python (0: from the start), in pieces from ``first_run_steps``."""
    if compile_after is None:
        patch.setattr(CostModel, "decode_run_terms", lambda self, num_seqs: None)
    else:
        patch.setattr(decode_run, "COMPILE_AFTER_STEPS", compile_after)
        if compile_after:  # as in a fresh process: Python first, then the kernel is imported
            patch.delitem(sys.modules, "simulator.engine.decode_kernel", raising=False)
    patch.setattr(decode_run, "FIRST_RUN_STEPS", first_run_steps)


@pytest.fixture(params=["compiled", "Python, then compiled", "step by step, pieces from 2 steps"])
def run_pricing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ways of pricing a run: the compiled kernel, a switch to it mid-simulation, the cost model."""
    if request.param == "compiled":
        _runs_priced(monkeypatch, 0, decode_run.FIRST_RUN_STEPS)
    elif request.param == "Python, then compiled":
        _runs_priced(monkeypatch, 300, decode_run.FIRST_RUN_STEPS)
    else:
        _runs_priced(monkeypatch, None, 2)


@pytest.mark.parametrize(
    "workload",
    [
        *ENGINE_WORKLOADS,
        {  # multi-turn sessions: later turns issued think_s after the turn before ends, history cached
            "rate_per_s": 4.0,
            "num_requests": 30,
            "output_tokens": {"dist": "uniform", "low": 1, "high": 90},
            "sessions": {"num_turns": {"dist": "uniform", "low": 1, "high": 5}, "think_time_s": 0.5},
        },
    ],
)
@pytest.mark.usefixtures("run_pricing")
def test_fast_mode_equals_step_mode(workload: dict[str, Any]) -> None:
    data = {"model": "llama-3.1-8b", "layout": {"dp": 2}, "workload": workload}
    step, fast = step_and_fast(data)
    assert_same_records(step, fast, gaps_in_order=False)


@pytest.mark.usefixtures("run_pricing")
@pytest.mark.parametrize("policy", ["vllm", "orca", "sarathi"])
def test_fast_mode_equals_step_mode_under_kv_pressure(policy: str) -> None:
    # A pool small enough that decode runs end on block shortage and preemptions happen.
    data = {
        "model": "llama-3.1-8b",
        "scheduler": {"gpu_memory_utilization": 0.24, "block_size": 8, "policy": policy, "chunk_size": 256},
        "workload": {"arrival": "burst", "num_requests": 40, "input_tokens": 900, "output_tokens": 400},
    }
    step, fast = step_and_fast(data)
    assert step.summary()["num_preemptions"] > 0
    assert_same_records(step, fast, gaps_in_order=False)


@pytest.mark.usefixtures("run_pricing")
def test_fast_mode_equals_step_mode_with_a_kv_aware_router() -> None:
    # least_kv reads every replica's occupancy at each arrival, in the middle of other replicas' runs:
    # they allocate the blocks of the steps begun so far first (_ActiveRun.sync_kv).
    data = {
        "model": "llama-3.1-8b",
        "layout": {"dp": 3},
        "scheduler": {"router": "least_kv", "gpu_memory_utilization": 0.3, "block_size": 4},
        "workload": {
            "arrival": "poisson",
            "rate_per_s": 12.0,
            "num_requests": 200,
            "input_tokens": {"dist": "uniform", "low": 50, "high": 1500},
            "output_tokens": {"dist": "uniform", "low": 20, "high": 300},
        },
    }
    step, fast = step_and_fast(data)
    assert fast.summary()["num_steps"] > 1000  # long enough for runs to be cut mid-way
    assert_same_records(step, fast, gaps_in_order=False)


@pytest.mark.parametrize("policy", ["vllm", "sarathi"])
def test_fast_mode_equals_step_mode_with_priority_classes(policy: str) -> None:
    # Urgent chats arriving while a batch backlog decodes: runs are cut by arrivals that preempt.
    classes = [
        {"name": "chat", "priority": 0, "rate_per_s": 8.0, "num_requests": 60, "output_tokens": 40},
        {
            "name": "batch",
            "priority": 1,
            "arrival": "burst",
            "num_requests": 30,
            "input_tokens": 900,
            "output_tokens": 300,
        },
    ]
    data = {
        "model": "llama-3.1-8b",
        "scheduler": {"gpu_memory_utilization": 0.24, "block_size": 8, "policy": policy},
        "workload": {"classes": classes},
    }
    step, fast = step_and_fast(data)
    assert step.summary()["num_preemptions"] > 0
    assert_same_records(step, fast, gaps_in_order=False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dp=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_outstanding", "random", "least_kv", "power_of_two"]),
    policy=st.sampled_from(["vllm", "orca", "sarathi"]),
    chunk_size=st.sampled_from([None, 64, 512]),
    arrival=st.sampled_from(["poisson", "burst", "concurrency"]),
    rate=st.floats(0.5, 60.0),
    output_high=st.integers(1, 200),
    max_num_seqs=st.integers(1, 64),
    block_size=st.sampled_from([1, 4, 16]),
    seed=st.integers(0, 1000),
    compile_after=st.sampled_from([None, 0, 200]),
    first_run_steps=st.sampled_from([2, decode_run.FIRST_RUN_STEPS]),
)
def test_fast_mode_equals_step_mode_on_random_workloads(
    dp: int,
    router: str,
    policy: str,
    chunk_size: int | None,
    arrival: str,
    rate: float,
    output_high: int,
    max_num_seqs: int,
    block_size: int,
    seed: int,
    compile_after: int | None,
    first_run_steps: int,
) -> None:
    data = {
        "model": "llama-3.1-8b",
        "seed": seed,
        "layout": {"dp": dp},
        "scheduler": {
            "router": router,
            "policy": policy,
            "chunk_size": chunk_size,
            "max_num_seqs": max_num_seqs,
            "block_size": block_size,
            "preemption_mode": "swap" if seed % 2 else "recompute",
        },
        "workload": {
            "arrival": arrival,
            "rate_per_s": rate if arrival == "poisson" else None,
            "concurrency": 5 if arrival == "concurrency" else None,
            "num_requests": 60,
            "input_tokens": {"dist": "uniform", "low": 1, "high": 600},
            "output_tokens": {"dist": "uniform", "low": 1, "high": output_high},
        },
    }
    with pytest.MonkeyPatch.context() as patch:
        _runs_priced(patch, compile_after, first_run_steps)
        step, fast = step_and_fast(data)
    assert_same_records(step, fast, gaps_in_order=False)


def test_a_run_ends_at_exactly_the_time_step_by_step_would() -> None:
    # Found by hypothesis: now + (end - now) missed the run's end by an ulp, so a closed-loop request
    # was issued before its predecessor's recorded finish. Runs now end at an absolute time.
    data = {
        "model": "llama-3.1-8b",
        "seed": 171428,
        "layout": {"dp": 2},
        "scheduler": {"max_num_seqs": 2, "max_num_batched_tokens": 32, "block_size": 1},
        "workload": {
            "arrival": "concurrency",
            "concurrency": 4,
            "num_requests": 6,
            "input_tokens": {"dist": "uniform", "low": 1, "high": 2},
            "output_tokens": {"dist": "uniform", "low": 1, "high": 23},
        },
    }
    step, fast = step_and_fast(data)
    assert_same_records(step, fast, gaps_in_order=False)
    req = fast.requests
    assert set(req["arrival_s"].iloc[4:]) <= set(req["finish_s"])  # issued exactly at finishes
