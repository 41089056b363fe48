"""Decode runs: price k identical decode steps at once, with the arithmetic of k single steps (L4).

When a replica's plan is decode-only and its policy is in ``DECODE_RUN_POLICIES``, the next steps
repeat the same plan until the first member finishes, KV blocks run short, or a request arrives. The
engine then prices the whole run here, waits once, and applies the steps that ended (all of them, or,
when a request arrived, those up to the step in progress at its arrival). Each step's shape, cost, end
time, block allocation, log row and inter-token gap are computed exactly as the step-by-step loop
would, float for float, so both modes give identical records (``tests/test_fast_mode.py``).

Planning a run prices its steps one by one with the cost model (its token-linear part memoized
inside ``CostModel``), stopping at the horizon. Applying a long run is a few numpy calls instead of a
Python loop over its steps: the step log and the inter-token gaps are written as arrays. No simpy here:
plain functions of the replica state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine.records import STEP_COLUMNS, ItlLog, StepLog
from simulator.scheduling.decode_set import DecodeSet
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaState
from simulator.speculative import Pricer
from simulator.step_cost import BatchShape

MAX_RUN_STEPS = 4096
"""Longest run priced at once (bounds the work thrown away when an arrival cuts a run short)."""

VECTOR_MIN_STEPS = 24
"""Runs of fewer steps are applied step by step (same numbers, in plain Python): below about this many
steps numpy's cost per call outweighs what it saves per step."""


@dataclass(slots=True)
class DecodeRun:
    """The planned steps of a run: end times, costs, and blocks each step allocates when it starts."""

    start_s: float
    num_seqs: int
    first_kv_tokens: int
    end_s: list[float]
    duration_s: list[float]
    flops: list[float]
    num_bytes: list[float]
    new_blocks: list[int]  # step 0's were allocated by the policy (0 here)


def plan_decode_run(
    state: ReplicaState, cost_model: Pricer, overhead_s: float, start_s: float, horizon_s: float
) -> DecodeRun | None:
    """The run that starts with the decode step the policy just planned; None when it is one step.

    The run stops at the first step that ends at or after ``horizon_s`` (the next request known to
    arrive anywhere in the cluster): past it the run would likely be cut short and its pricing wasted.
    Stopping at any step boundary is exact, since the next plan repeats the run's step.
    """
    decode = state.decode
    next_finish = decode.next_finish_step()
    max_steps = MAX_RUN_STEPS if next_finish is None else min(MAX_RUN_STEPS, next_finish - decode.step)
    if max_steps < 2:
        return None
    free = state.kv.num_free_blocks  # after step 0's blocks
    n, kv0 = len(decode), decode.num_kv_tokens
    run = DecodeRun(start_s, n, kv0, [], [], [], [], [])
    end_s = start_s
    for j in range(max_steps):
        need = decode.num_new_blocks_at(decode.step + j) if j else 0
        if need > free:
            break
        free -= need
        cost = cost_model.step(BatchShape(0, 0, 0.0, 0, n, kv0 + j * n, n))
        duration_s = cost.time_s + overhead_s
        end_s = end_s + duration_s
        run.end_s.append(end_s)
        run.duration_s.append(duration_s)
        run.flops.append(cost.flops)
        run.num_bytes.append(cost.num_bytes)
        run.new_blocks.append(need)
        if end_s >= horizon_s:
            break
    return run if len(run.end_s) >= 2 else None


def apply_decode_run(
    state: ReplicaState, run: DecodeRun, num_steps: int, steps: StepLog, itl: ItlLog
) -> list[Sequence]:
    """Apply the run's first ``num_steps`` steps: allocate, log, advance the decode set; return finishers."""
    if num_steps < VECTOR_MIN_STEPS:
        finished = _apply_step_by_step(state, run, num_steps, steps, itl)
    else:
        finished = _apply_at_once(state, run, num_steps, steps, itl)
    for seq in finished:
        state.release(seq)
    return finished


def _apply_step_by_step(
    state: ReplicaState, run: DecodeRun, num_steps: int, steps: StepLog, itl: ItlLog
) -> list[Sequence]:
    decode, kv = state.decode, state.kv
    log_step = steps.data.extend
    n = run.num_seqs
    finished: list[Sequence] = []
    itl_groups: list[tuple[float, int]] = []
    start_s = run.start_s
    for j in range(num_steps):
        if j:
            kv.allocate(run.new_blocks[j])
        log_step(
            (
                state.index,
                start_s,
                run.duration_s[j],
                n,
                0,
                n,
                0,
                kv.num_used_blocks,
                run.flops[j],
                run.num_bytes[j],
            )
        )  # in the order of records.STEP_COLUMNS
        finished.extend(decode.advance(run.end_s[j], itl_groups))
        start_s = run.end_s[j]
    for gap_s, count in itl_groups:
        itl.gap_s.append(gap_s)
        itl.count.append(count)
    return finished


def _apply_at_once(
    state: ReplicaState, run: DecodeRun, num_steps: int, steps: StepLog, itl: ItlLog
) -> list[Sequence]:
    kv = state.kv
    n = run.num_seqs
    end_s = run.end_s[:num_steps]
    used_blocks = kv.num_used_blocks + np.cumsum(run.new_blocks[:num_steps])
    kv.allocate(int(used_blocks[-1]) - kv.num_used_blocks)  # allocations only grow: the peak is the last
    rows = np.empty((num_steps, len(STEP_COLUMNS)), dtype=np.float64)  # in the order of STEP_COLUMNS
    rows[:, 0] = state.index
    rows[0, 1] = run.start_s
    rows[1:, 1] = end_s[:-1]
    rows[:, 2] = run.duration_s[:num_steps]
    rows[:, 3] = n
    rows[:, 4] = 0
    rows[:, 5] = n
    rows[:, 6] = 0
    rows[:, 7] = used_blocks
    rows[:, 8] = run.flops[:num_steps]
    rows[:, 9] = run.num_bytes[:num_steps]
    steps.data.frombytes(rows.tobytes())
    return _advance(state.decode, end_s, itl)


def _advance(decode: DecodeSet, end_s: list[float], itl: ItlLog) -> list[Sequence]:
    """The decode set after the steps ending at ``end_s``; their gaps into ``itl``, in step order.

    The first and last steps go through ``DecodeSet.advance`` (the first closes the gaps of members
    that joined since the last step, the last finishes members); in between every member continues and
    none finishes (the run ends at the first finish), so each step adds one gap shared by all members.
    """
    groups: list[tuple[float, int]] = []
    finished = decode.advance(end_s[0], groups)
    if len(end_s) > 1:
        inner = np.diff(np.array(end_s[:-1], dtype=np.float64))
        assert not finished and decode.num_continuing == len(decode)
        groups.extend(zip(inner.tolist(), [len(decode)] * len(inner), strict=True))
        decode.step += len(inner)
        decode.last_step_end_s = end_s[-2]
        finished = decode.advance(end_s[-1], groups)
    for gap_s, count in groups:
        itl.gap_s.append(gap_s)
        itl.count.append(count)
    return finished
