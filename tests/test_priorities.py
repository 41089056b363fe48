"""Request classes and priorities: config checks, the merged workload, the priority queue and
preemption without simpy, per-class summary keys, and the direction check under a batch backlog."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator import ConfigError, Scenario, simulate
from simulator.kv_cache import BlockManager
from simulator.scheduling.policies import sarathi_policy, vllm_policy
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaLimits, ReplicaState, apply_step
from simulator.scheduling.waiting import WaitingQueue
from simulator.workload import build_workload

INTERACTIVE: dict[str, Any] = {
    "name": "interactive",
    "priority": 0,
    "rate_per_s": 4.0,
    "num_requests": 200,
    "input_tokens": {"dist": "uniform", "low": 100, "high": 800},
    "output_tokens": {"dist": "uniform", "low": 50, "high": 300},
    "slo": {"ttft_p99_s": 0.5},
}
BATCH: dict[str, Any] = {
    "name": "batch",
    "priority": 1,
    "arrival": "burst",
    "num_requests": 600,
    "input_tokens": 2000,
    "output_tokens": 800,
}


def _scenario(*classes: dict[str, Any], **scheduler: Any) -> Scenario:
    return Scenario.from_dict(
        {
            "model": "llama-3.1-8b",
            "scheduler": {"gpu_memory_utilization": 0.3, **scheduler},
            "workload": {"classes": list(classes)},
            "seed": 1,
        }
    )


def test_classes_are_checked_with_clear_messages() -> None:
    with pytest.raises(ConfigError, match="replaces the workload's own rate_per_s"):
        Scenario.from_dict({"workload": {"rate_per_s": 3, "classes": [INTERACTIVE]}})
    with pytest.raises(ConfigError, match="names must be unique"):
        _scenario(INTERACTIVE, INTERACTIVE)
    with pytest.raises(ConfigError, match="open-loop arrivals"):
        _scenario(INTERACTIVE, {**BATCH, "arrival": "concurrency", "concurrency": 2})
    with pytest.raises(ConfigError, match="name"):
        _scenario({**BATCH, "name": "has space"})


def test_the_mixed_workload_merges_classes_by_arrival_and_keeps_each_class_stream() -> None:
    two = build_workload(_scenario(INTERACTIVE, BATCH).workload, 1)
    assert len(two) == 800 and two.class_names == ("interactive", "batch")
    assert np.all(np.diff(two.arrival_s) >= 0)
    frame = two.to_frame()
    assert frame["request_class"].value_counts().to_dict() == {"batch": 600, "interactive": 200}
    assert (frame.loc[frame["request_class"] == "batch", "arrival_s"] == 0.0).all()
    # the interactive class draws from its own streams: adding the batch class does not move it
    alone = build_workload(_scenario(INTERACTIVE).workload, 1).to_frame()
    mixed = frame[frame["request_class"] == "interactive"].reset_index(drop=True)
    pd.testing.assert_frame_equal(mixed.drop(columns="request_class"), alone.drop(columns="request_class"))


def test_waiting_queue_serves_the_most_urgent_level_first_fcfs_within() -> None:
    queue = WaitingQueue()
    a, b, c, d = (Sequence(i, 0.0, 10, 10) for i in range(4))
    b.priority = d.priority = 0
    a.priority = c.priority = 2
    for seq in (a, b, c, d):
        queue.append(seq)
    assert list(queue) == [b, d, a, c] and queue[0] is b and len(queue) == 4
    queue.appendleft(c)  # a preempted request returns to the front of its own level
    assert list(queue) == [b, d, c, a, c]
    assert [queue.popleft() for _ in range(5)] == [b, d, c, a, c] and not queue
    with pytest.raises(IndexError):
        queue[0]


@pytest.mark.parametrize("policy", [vllm_policy, sarathi_policy])
def test_an_urgent_prompt_preempts_the_youngest_less_urgent_decoder(policy: Any) -> None:
    limits = ReplicaLimits(256, 8192, priority_preemption=True)
    state = ReplicaState(0, BlockManager(10, 16), limits)
    old, young = Sequence(0, 0.0, 64, 100), Sequence(1, 0.0, 64, 100)  # 4 blocks each
    old.priority = young.priority = 1
    for seq in (old, young):
        state.enqueue(seq)
    apply_step(state, vllm_policy(state), 1.0)
    urgent = Sequence(2, 1.0, 60, 5)  # needs 4 blocks; 2 are free
    state.enqueue(urgent)
    plan = policy(state)
    assert plan.preempted == [young]
    assert [s for s, _ in plan.prefills] == [urgent]
    assert list(state.waiting) == [young] and young.num_blocks == 0 and old in state.decode.members
    # equal priorities never preempt for admission
    state2 = ReplicaState(0, BlockManager(10, 16), limits)
    for seq in (Sequence(0, 0.0, 64, 100), Sequence(1, 0.0, 64, 100)):
        state2.enqueue(seq)
    apply_step(state2, vllm_policy(state2), 1.0)
    state2.enqueue(Sequence(2, 1.0, 60, 5))
    assert not policy(state2).preempted


def test_priority_lowers_interactive_ttft_under_a_batch_backlog() -> None:
    prioritized = simulate(_scenario(INTERACTIVE, BATCH)).summary()
    fifo = simulate(_scenario(INTERACTIVE, {**BATCH, "priority": 0})).summary()
    no_preempt = simulate(_scenario(INTERACTIVE, BATCH, priority_preemption=False)).summary()
    # measured: 0.26 s with priority and preemption, 4.9 s without preemption, 284 s FIFO
    assert prioritized["interactive.ttft_p99_s"] < 0.5 < no_preempt["interactive.ttft_p99_s"]
    assert no_preempt["interactive.ttft_p99_s"] < 0.1 * fifo["interactive.ttft_p99_s"]
    assert prioritized["interactive.slo_met_frac"] == 1.0 > fifo["interactive.slo_met_frac"]
    for summary in (prioritized, fifo, no_preempt):  # nobody starves: every batch request finishes
        assert summary["batch.num_completed"] == 600 and summary["interactive.num_completed"] == 200
    requests = simulate(_scenario(INTERACTIVE, BATCH)).requests
    assert list(requests.columns[:2]) == ["request_id", "request_class"]
