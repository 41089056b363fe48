"""Multi-turn sessions: the turns' prompts and prefixes, the history cached without simpy, the next turn
issued a think time after the turn before, and the direction check (session prefix hits lower TTFT)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulator import Scenario, build_workload, simulate
from simulator.kv_cache import BlockManager
from simulator.scheduling.policies import vllm_policy
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaLimits, ReplicaState, apply_step

BASE: dict[str, Any] = {"model": "llama-3.1-8b", "hardware": "h100-sxm"}


def _workload(**sessions: Any) -> dict[str, Any]:
    return {
        "rate_per_s": 1.0,
        "num_requests": 5,
        "input_tokens": {"dist": "uniform", "low": 50, "high": 150},
        "output_tokens": {"dist": "uniform", "low": 10, "high": 90},
        "sessions": {"num_turns": {"dist": "uniform", "low": 1, "high": 4}, **sessions},
    }


def test_each_turn_prompt_is_the_conversation_so_far_plus_a_new_message() -> None:
    table = build_workload(Scenario.from_dict({"workload": _workload()}).workload, seed=4)
    frame = table.to_frame()
    assert table.next_turn is not None and table.prefix_id is not None and table.prefix_tokens is not None
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):
        nxt = row["next_turn"]
        if nxt < 0:
            continue
        later = rows[nxt]
        assert nxt == i + 1 and later["prefix_id"] == row["prefix_id"] and later["think_s"] > 0
        # the next turn's prefix: this turn's prompt and answer; then its own message
        assert later["prefix_tokens"] == row["input_tokens"] + row["output_tokens"]
        assert 50 <= later["input_tokens"] - later["prefix_tokens"] <= 150
    firsts = frame[frame["prefix_tokens"] == 0]
    assert len(firsts) == 5 and (firsts["think_s"] == 0).all()
    assert frame["prefix_id"].nunique() == 5 and len(frame) > 5  # five sessions, several turns each
    assert (np.diff(frame["arrival_s"]) >= 0).all()  # a later turn's row holds its session's start


def test_sessions_inside_request_classes_keep_their_turn_links() -> None:
    workload = {
        "classes": [{"name": "chat", **_workload(think_time_s=1.0)}, {"name": "batch", "num_requests": 4}]
    }
    table = build_workload(Scenario.from_dict({"workload": workload}).workload, seed=1)
    assert table.next_turn is not None and table.class_id is not None and table.prefix_tokens is not None
    for i, nxt in enumerate(table.next_turn.tolist()):
        if nxt >= 0:
            assert nxt > i and table.class_id[nxt] == table.class_id[i] == 0
            assert table.prefix_tokens[nxt] == table.input_tokens[i] + table.output_tokens[i]


def test_a_finished_turn_leaves_its_whole_conversation_cached_for_the_next() -> None:
    state = ReplicaState(0, BlockManager(100, 16, prefix_caching=True), ReplicaLimits(256, 8192))
    first = Sequence(0, 0.0, 100, 40)  # 100-token message, 40-token answer
    first.prefix_id, first.cache_history = 3, True
    state.enqueue(first)
    t = 0.0
    while first.finish_s != first.finish_s:  # NaN until it finishes
        t += 1.0
        apply_step(state, vllm_policy(state), t)
    # KV of 100 + 40 - 1 tokens computed: 8 full blocks stay cached (evictable, so counted free)
    assert state.kv.cached_prefix_blocks(3) == 8 and state.kv.num_free_blocks == 100
    second = Sequence(1, t, 140 + 60, 5)  # prompt = the conversation (140) + a 60-token message
    second.prefix_id, second.prefix_tokens, second.cache_history = 3, 140, True
    state.enqueue(second)
    plan = vllm_policy(state)
    assert plan.prefills == [(second, 200 - 128)]  # 8 blocks = 128 tokens read from the cache
    while second.finish_s != second.finish_s:
        t += 1.0
        apply_step(state, plan, t)
        plan = vllm_policy(state)
    assert state.kv.cached_prefix_blocks(3) == (200 + 5 - 1) // 16  # grown to the longer conversation
    assert state.kv.num_free_blocks == 100 and state.kv.num_used_blocks == 0
    cache = state.kv.prefixes
    assert cache is not None and (cache.num_prefix_tokens, cache.num_hit_tokens) == (140, 128)


def test_the_next_turn_is_sent_a_think_time_after_the_turn_before_ends() -> None:
    data = BASE | {"workload": _workload(think_time_s=2.0, think_time_dist="fixed")}
    req = simulate(Scenario.from_dict(data)).requests
    table = build_workload(Scenario.from_dict(data).workload, seed=0)
    assert (req["status"] == "finished").all()
    for i, nxt in enumerate(table.next_turn.tolist()):  # type: ignore[union-attr]
        if nxt >= 0:
            assert req.loc[nxt, "arrival_s"] == pytest.approx(req.loc[i, "finish_s"] + 2.0)


def test_a_rejected_turn_rejects_the_rest_of_its_session() -> None:
    data = BASE | {"workload": _workload(num_turns=6), "scheduler": {"max_model_len": 400}}
    req = simulate(Scenario.from_dict(data)).requests
    assert set(req["status"]) == {"finished", "rejected"}
    assert (req.loc[req["status"] == "rejected", "reject_reason"].str.contains("max_model_len")).all()


def _conversations(caching: bool) -> dict[str, Any]:
    data = BASE | {
        "layout": {"dp": 4},
        "scheduler": {"prefix_caching": caching, "router": "prefix_affinity"},
        "workload": {
            "rate_per_s": 2.0,
            "num_requests": 200,
            "input_tokens": {"dist": "uniform", "low": 200, "high": 800},
            "output_tokens": {"dist": "uniform", "low": 100, "high": 400},
            "sessions": {"num_turns": 6, "think_time_s": 5.0},
        },
    }
    return simulate(Scenario.from_dict(data)).summary()


def test_session_prefix_hits_lower_ttft() -> None:
    cold, warm = _conversations(False), _conversations(True)
    # measured: TTFT p50 62 ms recomputing every conversation, 18 ms with the history cached (hit 0.99)
    assert warm["prefix_hit_frac"] > 0.9
    assert warm["ttft_p50_s"] < 0.5 * cold["ttft_p50_s"] and warm["ttft_p99_s"] < cold["ttft_p99_s"]
    assert warm["num_completed"] == cold["num_completed"] == 1200
