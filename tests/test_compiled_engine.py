"""The compiled engine plays the step-by-step SimPy engine event for event: identical records."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from _records import ENGINE_WORKLOADS, assert_same_records, step_and_fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import Scenario, resolve
from simulator.engine import compiled
from simulator.workload import build_workload


def _both_engines(data: dict[str, Any]) -> tuple[Any, Any]:
    """The SimPy engine step by step, and the compiled engine (forced, however short the run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled, "COMPILED_AFTER_REQUESTS", 0)
        return step_and_fast(data)


@pytest.mark.parametrize("workload", ENGINE_WORKLOADS)
def test_compiled_engine_equals_step_mode(workload: dict[str, Any]) -> None:
    step, fast = _both_engines({"model": "llama-3.1-8b", "layout": {"dp": 2}, "workload": workload})
    assert_same_records(step, fast)


@pytest.mark.parametrize("policy", ["vllm", "orca", "sarathi"])
@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_compiled_engine_equals_step_mode_under_kv_pressure(policy: str, preemption: str) -> None:
    data = {
        "model": "llama-3.1-8b",
        "scheduler": {
            "gpu_memory_utilization": 0.24,
            "block_size": 8,
            "policy": policy,
            "chunk_size": 256,
            "preemption_mode": preemption,
        },
        "workload": {"arrival": "burst", "num_requests": 40, "input_tokens": 900, "output_tokens": 400},
    }
    step, fast = _both_engines(data)
    assert step.summary()["num_preemptions"] > 0
    assert_same_records(step, fast)


@pytest.mark.parametrize("router", ["least_kv", "least_outstanding", "random"])
def test_compiled_engine_equals_step_mode_with_each_router(router: str) -> None:
    data = {
        "model": "llama-3.1-8b",
        "layout": {"dp": 3, "tp": 2},  # tp > 1: the logits' all-gather, FLOPs and bytes x tp
        "scheduler": {"router": router, "gpu_memory_utilization": 0.3, "block_size": 4},
        "workload": {
            "arrival": "poisson",
            "rate_per_s": 12.0,
            "num_requests": 200,
            "input_tokens": {"dist": "uniform", "low": 50, "high": 1500},
            "output_tokens": {"dist": "uniform", "low": 20, "high": 300},
        },
    }
    step, fast = _both_engines(data)
    assert len(set(fast.requests["replica"])) == 3
    assert_same_records(step, fast)


@pytest.mark.parametrize("policy", ["vllm", "orca", "sarathi"])
@pytest.mark.parametrize("priority_preemption", [True, False])
def test_compiled_engine_equals_step_mode_with_priority_classes(
    policy: str, priority_preemption: bool
) -> None:
    # Urgent chats arriving while a batch backlog decodes: three levels, preemptions of the least urgent.
    classes = [
        {"name": "chat", "priority": 0, "rate_per_s": 8.0, "num_requests": 60, "output_tokens": 40},
        {"name": "agent", "priority": 3, "rate_per_s": 2.0, "num_requests": 20, "output_tokens": 120},
        {
            "name": "batch",
            "priority": 7,
            "arrival": "burst",
            "num_requests": 30,
            "input_tokens": 900,
            "output_tokens": 300,
        },
    ]
    data = {
        "model": "llama-3.1-8b",
        "layout": {"dp": 2},
        "scheduler": {
            "gpu_memory_utilization": 0.24,
            "block_size": 8,
            "policy": policy,
            "priority_preemption": priority_preemption,
        },
        "workload": {"classes": classes},
    }
    step, fast = _both_engines(data)
    assert fast.records.engine == "compiled" and step.records.engine == "simpy"
    assert step.summary()["num_preemptions"] > 0
    assert_same_records(step, fast)


@pytest.mark.parametrize("policy", ["vllm", "orca", "sarathi"])
@pytest.mark.parametrize("router", ["round_robin", "prefix_affinity"])
@pytest.mark.parametrize("caching", [True, False])
def test_compiled_engine_equals_step_mode_with_shared_prefixes(
    policy: str, router: str, caching: bool
) -> None:
    # ~14k tokens of KV per replica for 20 prefixes of 3,000 tokens: prefixes are shared, evicted
    # (least recently used first), recomputed; waiting requests pin and unpin them
    data = {
        "model": "llama-3.1-8b",
        "layout": {"dp": 2},
        "scheduler": {
            "router": router,
            "policy": policy,
            "chunk_size": 1024,
            "prefix_caching": caching,
            "gpu_memory_utilization": 0.25,
        },
        "workload": {
            "rate_per_s": 10.0,
            "num_requests": 400,
            "input_tokens": {"dist": "uniform", "low": 50, "high": 300},
            "output_tokens": 60,
            "prefix": {"num_prefixes": 20, "tokens": 3000, "popularity": "zipf"},
        },
        "seed": 2,
    }
    step, fast = _both_engines(data)
    assert fast.records.engine == "compiled"
    if caching:
        assert 0 < step.summary()["prefix_hit_frac"] < 1
        assert (step.records.prefix_tokens, step.records.prefix_hit_tokens) == (
            fast.records.prefix_tokens,
            fast.records.prefix_hit_tokens,
        )
    assert_same_records(step, fast)


@pytest.mark.parametrize("policy", ["vllm", "sarathi"])
@pytest.mark.parametrize("router", ["round_robin", "prefix_affinity", "random"])  # random: drawn in
@pytest.mark.parametrize("caching", [True, False])  # routing order, not request order (hypothesis)
def test_compiled_engine_equals_step_mode_with_sessions(policy: str, router: str, caching: bool) -> None:
    # multi-turn sessions: later turns issued think_s after the turn before ends, history cached and grown
    data = {
        "model": "llama-3.1-8b",
        "layout": {"dp": 2},
        "scheduler": {"policy": policy, "router": router, "prefix_caching": caching, "max_model_len": 2500},
        "workload": {
            "rate_per_s": 4.0,
            "num_requests": 60,
            "input_tokens": {"dist": "uniform", "low": 50, "high": 800},
            "output_tokens": {"dist": "uniform", "low": 1, "high": 300},
            "sessions": {"num_turns": {"dist": "uniform", "low": 1, "high": 6}, "think_time_s": 0.5},
        },
    }
    step, fast = _both_engines(data)
    assert fast.records.engine == "compiled"
    assert fast.summary()["num_rejected"] > 0  # late turns past max_model_len: the rest of the session too
    if caching:
        assert fast.summary()["prefix_hit_frac"] > 0.3
    assert_same_records(step, fast)


def test_turns_waiting_out_their_think_time_outnumber_the_first_event_heap() -> None:
    # Found by hypothesis: each session in its think time holds an event, and the event heap, sized for
    # the replicas' events, overflowed (a crash); it now has a slot for every later turn.
    data = {
        "model": "llama-3.1-8b",
        "scheduler": {"max_num_seqs": 2},
        "workload": {
            "rate_per_s": 40.0,
            "num_requests": 300,
            "input_tokens": 100,
            "output_tokens": {"dist": "uniform", "low": 1, "high": 8},
            "sessions": {"num_turns": 3, "think_time_s": 30.0},
        },
    }
    scenario = Scenario.from_dict(data)
    table = build_workload(scenario.workload, scenario.seed)
    assert table.next_turn is not None and table.is_follow_up is not None
    first_turns = table.arrival_s[~table.is_follow_up]
    assert first_turns.max() - first_turns.min() < 30.0  # every session thinks at the same time
    assert (table.next_turn >= 0).sum() > 50  # as many events waiting at once
    step, fast = _both_engines(data)
    assert_same_records(step, fast)


def test_rejected_requests_are_recorded_with_their_reason() -> None:
    data = {
        "model": "llama-3.1-8b",
        "scheduler": {"max_model_len": 1000},
        "workload": {
            "rate_per_s": 5.0,
            "num_requests": 50,
            "input_tokens": {"dist": "uniform", "low": 100, "high": 1500},
        },
    }
    step, fast = _both_engines(data)
    assert fast.summary()["num_rejected"] > 0
    assert step.records.requests.reject_reason == fast.records.requests.reject_reason
    assert_same_records(step, fast)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dp=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_outstanding", "least_kv", "random", "prefix_affinity"]),
    policy=st.sampled_from(["vllm", "orca", "sarathi"]),
    chunk_size=st.sampled_from([None, 64, 512]),
    arrival=st.sampled_from(["poisson", "burst", "concurrency"]),
    rate=st.floats(0.5, 60.0),
    output_high=st.integers(1, 200),
    max_num_seqs=st.integers(1, 64),
    max_num_batched_tokens=st.sampled_from([32, 256, 8192]),
    block_size=st.sampled_from([1, 4, 16]),
    memory=st.sampled_from([0.24, 0.9]),
    priorities=st.sampled_from([None, (0, 0), (0, 1), (2, 1, 5)]),
    prefixes=st.sampled_from([None, (1, 40), (6, 500)]),
    sessions=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_compiled_engine_equals_step_mode_on_random_workloads(
    dp: int,
    router: str,
    policy: str,
    chunk_size: int | None,
    arrival: str,
    rate: float,
    output_high: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    block_size: int,
    memory: float,
    priorities: tuple[int, ...] | None,
    prefixes: tuple[int, int] | None,
    sessions: bool,
    seed: int,
) -> None:
    lengths = {
        "input_tokens": {"dist": "uniform", "low": 1, "high": 600},
        "output_tokens": {"dist": "uniform", "low": 1, "high": output_high},
    }
    workload: dict[str, Any] = {
        "arrival": arrival,
        "rate_per_s": rate if arrival == "poisson" else None,
        "concurrency": 5 if arrival == "concurrency" else None,
        "num_requests": 60,
        **lengths,
    }
    if prefixes is not None:  # shared prefixes (system prompts), cached unless seed says otherwise
        workload["prefix"] = {"num_prefixes": prefixes[0], "tokens": prefixes[1], "popularity": "zipf"}
    elif sessions and arrival != "concurrency":  # multi-turn sessions (an open loop without prefixes)
        workload["sessions"] = {"num_turns": {"dist": "uniform", "low": 1, "high": 4}, "think_time_s": 0.3}
    if priorities is not None:  # request classes, each with its own arrivals
        workload = {
            "classes": [
                {"name": f"c{k}", "priority": p, "rate_per_s": rate / (k + 1), "num_requests": 25, **lengths}
                for k, p in enumerate(priorities)
            ]
        }
    data = {
        "model": "llama-3.1-8b",
        "seed": seed,
        "layout": {"dp": dp},
        "scheduler": {
            "router": router,
            "policy": policy,
            "chunk_size": chunk_size,
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens,
            "block_size": block_size,
            "gpu_memory_utilization": memory,
            "preemption_mode": "swap" if seed % 2 else "recompute",
            "prefix_caching": seed % 3 != 0,
        },
        "workload": workload,
    }
    step, fast = _both_engines(data)
    assert_same_records(step, fast)


@pytest.mark.parametrize(
    ("update", "why"),
    [
        ({"scheduler.fast_mode": False}, "fast_mode"),
        ({"scheduler.policy": "static"}, "policy 'static'"),
        ({"scheduler.router": "power_of_two"}, "router 'power_of_two'"),
        ({"layout.pp": 2}, "pipelined"),
        ({"scheduler.speculative": {"draft": "mtp", "num_speculative_tokens": 1}}, "speculative"),
        (
            {"workload": {"classes": [{"name": f"c{k}", "priority": k} for k in range(9)]}},
            "more than 8 priority levels",
        ),
    ],
)
def test_scenarios_the_compiled_engine_does_not_cover_run_in_simpy(update: dict[str, Any], why: str) -> None:
    scenario = Scenario.default({"model": "llama-3.1-8b", "workload.num_requests": 20, **update})
    resolved = resolve(scenario)
    requests = build_workload(scenario.workload, scenario.seed)
    blocker = compiled.compiled_engine_blocker(resolved, requests)
    assert blocker is not None and why in blocker
    assert not compiled.use_compiled_engine(resolved, requests)
    with pytest.raises(ValueError, match="does not cover"):
        compiled.run_compiled(resolved, requests)


def test_the_default_scenario_is_covered_and_long_runs_use_it() -> None:
    scenario = Scenario.default({"workload.num_requests": compiled.COMPILED_AFTER_REQUESTS})
    resolved = resolve(scenario)
    requests = build_workload(scenario.workload, scenario.seed)
    assert compiled.compiled_engine_blocker(resolved, requests) is None
    assert compiled.use_compiled_engine(resolved, requests)
    assert np.all(requests.output_tokens >= 1)


@pytest.mark.parametrize("kernel", sorted(compiled.KERNEL_SOURCES))
def test_each_kernel_records_the_digest_of_the_code_it_compiles_in(kernel: str) -> None:
    # numba's cache is keyed on each function's own file: an edit to compiled_replica.py or
    # spec_pricing.py alone would leave a stale kernel in __pycache__. Update the kernel's
    # SOURCES_DIGEST (which changes its file, and so its cache) to the value printed here.
    module = importlib.import_module(kernel)
    assert compiled.sources_digest(kernel) == module.SOURCES_DIGEST
