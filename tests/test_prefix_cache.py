"""Prefix caching: the block pool with resident prefixes, hits at admission, LRU eviction, the
prefix-affinity router, and the direction check (hits lower TTFT)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator import Scenario, simulate
from simulator.kv_cache import BlockManager
from simulator.scheduling.policies import sarathi_policy, vllm_policy
from simulator.scheduling.routers import RouterContext, prefix_affinity
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaLimits, ReplicaState, apply_step
from simulator.workload import build_workload


def _seq(request_id: int, prompt: int, output: int, prefix_id: int = 7, prefix_tokens: int = 64) -> Sequence:
    seq = Sequence(request_id, 0.0, prompt, output)
    seq.prefix_id, seq.prefix_tokens = prefix_id, prefix_tokens
    return seq


def _conserved(state: ReplicaState) -> bool:
    kv, cache = state.kv, state.kv.prefixes
    assert cache is not None
    referenced = sum(e.num_blocks for e in cache.entries.values() if e.refcount)
    return kv.num_free_blocks + sum(s.num_blocks for s in state.running()) + referenced == kv.num_blocks


def _run_to_end(state: ReplicaState, t: float = 0.0) -> float:
    while state.has_work:
        t += 1.0
        plan = vllm_policy(state)
        assert not plan.is_empty
        apply_step(state, plan, t)
        assert _conserved(state)
    return t


def test_a_finished_prefix_stays_cached_and_the_next_request_skips_it() -> None:
    state = ReplicaState(0, BlockManager(20, 16, prefix_caching=True), ReplicaLimits(256, 8192))
    first = _seq(0, 100, 2)  # 64 prefix tokens = 4 full blocks, then 36 of its own
    state.enqueue(first)
    _run_to_end(state)
    assert state.kv.cached_prefix_blocks(7) == 4 and state.kv.num_free_blocks == 20  # evictable = free
    second = _seq(1, 80, 2)
    state.enqueue(second)
    plan = vllm_policy(state)
    assert plan.prefills == [(second, 16)]  # 80 - 64 cached tokens
    assert second.num_shared_blocks == 4 and second.num_blocks == 1 and state.kv.num_free_blocks == 15
    shape = plan.shape()  # the 16 new tokens attend to the 64 cached ones
    assert shape.prefill_attn_pairs == 16 * 64 + 16 * 17 / 2 and shape.prefill_kv_tokens == 80
    apply_step(state, plan, 10.0)
    _run_to_end(state, 10.0)
    cache = state.kv.prefixes
    assert cache is not None and (cache.num_prefix_tokens, cache.num_hit_tokens) == (128, 64)


def test_idle_prefixes_are_evicted_least_recently_used_first_when_blocks_run_out() -> None:
    state = ReplicaState(0, BlockManager(12, 16, prefix_caching=True), ReplicaLimits(256, 8192))
    for request_id, prefix_id in enumerate((1, 2)):  # two prefixes of 4 blocks, cached in turn
        state.enqueue(_seq(request_id, 70, 1, prefix_id=prefix_id))
        _run_to_end(state)
    assert state.kv.cached_prefix_blocks(1) == state.kv.cached_prefix_blocks(2) == 4
    big = _seq(2, 100, 1, prefix_id=-1, prefix_tokens=0)  # 7 blocks: 4 truly free, evict prefix 1
    state.enqueue(big)
    state.admit(big, 7)
    assert state.kv.cached_prefix_blocks(1) == 0 and state.kv.cached_prefix_blocks(2) == 4
    assert _conserved(state)


def test_a_shared_prefix_is_referenced_not_copied_by_concurrent_requests() -> None:
    state = ReplicaState(0, BlockManager(40, 16, prefix_caching=True), ReplicaLimits(256, 8192, 64))
    state.enqueue(_seq(0, 100, 50))
    _run_to_end(state)
    a, b = _seq(1, 90, 30), _seq(2, 90, 30)
    state.enqueue(a)
    state.enqueue(b)
    apply_step(state, sarathi_policy(state), 1.0)
    assert a.num_shared_blocks == b.num_shared_blocks == 4 and a.num_blocks == b.num_blocks == 2
    assert _conserved(state)
    _run_to_end(state, 1.0)
    assert _conserved(state) and state.kv.num_free_blocks == 40


def test_prefix_affinity_keeps_a_prefix_on_one_replica_until_it_is_overloaded() -> None:
    replicas = [ReplicaState(i, BlockManager(100, 16), ReplicaLimits(256, 8192)) for i in range(3)]
    ctx = RouterContext(rng=np.random.default_rng(0))
    picks = [prefix_affinity(ctx, replicas, _seq(i, 100, 5, prefix_id=3)) for i in range(3)]
    assert picks == [0, 0, 0]  # nothing is outstanding: the home stays
    for i in range(9):
        replicas[0].enqueue(_seq(10 + i, 100, 5, prefix_id=3))
    moved = prefix_affinity(ctx, replicas, _seq(20, 100, 5, prefix_id=3))
    assert moved in (1, 2)  # 9 outstanding > 2 * 0 + 4: the least loaded replica
    assert prefix_affinity(ctx, replicas, _seq(21, 100, 5, prefix_id=3)) == moved  # the new home


def _scenario(**extra: Any) -> dict[str, Any]:
    return {
        "model": "llama-3.1-8b",
        "layout": {"dp": 2},
        "workload": {
            "rate_per_s": 10.0,
            "num_requests": 400,
            "input_tokens": {"dist": "uniform", "low": 50, "high": 300},
            "output_tokens": 60,
            "prefix": {"num_prefixes": 20, "tokens": 3000, "popularity": "zipf"},
        },
        "seed": 2,
    } | extra


def test_the_workload_prepends_prefixes_and_prefix_hits_lower_ttft() -> None:
    scenario = Scenario.from_dict(_scenario())
    table = build_workload(scenario.workload, scenario.seed)
    assert table.prefix_id is not None and table.prefix_tokens is not None
    assert (table.prefix_tokens == 3000).all() and (table.input_tokens >= 3050).all()
    assert np.bincount(table.prefix_id)[0] > np.bincount(table.prefix_id)[-1]  # zipf: rank 1 most often
    cached = simulate(scenario).summary()
    uncached = simulate(scenario.with_updates({"scheduler.prefix_caching": False})).summary()
    assert cached["prefix_hit_frac"] > 0.8 and uncached["prefix_hit_frac"] != uncached["prefix_hit_frac"]
    assert cached["ttft_p50_s"] < 0.5 * uncached["ttft_p50_s"]


def test_fast_mode_equals_step_mode_with_prefixes_and_eviction() -> None:
    # ~14k tokens of KV per replica for 20 prefixes of 3,000 tokens: prefixes are evicted and recomputed
    data = _scenario(scheduler={"router": "prefix_affinity", "gpu_memory_utilization": 0.25})
    step = simulate(Scenario.from_dict(data, {"scheduler.fast_mode": False}))
    fast = simulate(Scenario.from_dict(data, {"scheduler.fast_mode": True}))
    assert 0 < step.summary()["prefix_hit_frac"] < 1
    pd.testing.assert_frame_equal(step.requests, fast.requests)
    pd.testing.assert_frame_equal(step.steps, fast.steps)
