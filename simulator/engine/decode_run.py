"""Decode runs: price k identical decode steps at once, with the arithmetic of k single steps (L4).

When a replica's plan is decode-only and its policy is in ``DECODE_RUN_POLICIES``, the next steps
repeat the same plan until the first member finishes, KV blocks run short, or a request arrives. The
engine then prices the whole run here, waits once, and applies the steps that ended (all of them, or,
when a request arrived, those up to the step in progress at its arrival). Each step's shape, cost, end
time, block allocation, log row and inter-token gap are computed exactly as the step-by-step loop
would, float for float, so both modes give identical records (``tests/test_fast_mode.py``).
No simpy here: the planning and applying are plain functions of the replica state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.engine.records import ItlLog, StepLog
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaState
from simulator.speculative import Pricer
from simulator.step_cost import BatchShape

MAX_RUN_STEPS = 4096
"""Longest run priced at once (bounds the work thrown away when an arrival cuts a run short)."""


@dataclass(slots=True)
class DecodeRun:
    """The planned steps of a run: end times, costs, and blocks each step allocates when it starts."""

    start_s: float
    num_seqs: int
    first_kv_tokens: int
    end_s: list[float] = field(default_factory=list)
    duration_s: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    num_bytes: list[float] = field(default_factory=list)
    new_blocks: list[int] = field(default_factory=list)  # step 0's were allocated by the policy


def plan_decode_run(
    state: ReplicaState, cost_model: Pricer, overhead_s: float, start_s: float, horizon_s: float
) -> DecodeRun | None:
    """The run that starts with the decode step the policy just planned; None when it is one step.

    The run stops at the first step that ends at or after ``horizon_s`` (the next request known to
    arrive anywhere in the cluster): past it the run would likely be cut short and its pricing wasted.
    Stopping at any step boundary is exact, since the next plan repeats the run's step.
    """
    decode = state.decode
    first_step = decode.step
    next_finish = decode.next_finish_step()
    max_steps = MAX_RUN_STEPS if next_finish is None else min(MAX_RUN_STEPS, next_finish - first_step)
    if max_steps < 2:
        return None
    free = state.kv.num_free_blocks  # after step 0's blocks
    n = len(decode)
    run = DecodeRun(start_s=start_s, num_seqs=n, first_kv_tokens=decode.num_kv_tokens)
    end_s = start_s
    for j in range(max_steps):
        need = decode.num_new_blocks_at(first_step + j) if j else 0
        if need > free:
            break
        free -= need
        cost = cost_model.step(BatchShape(0, 0, 0.0, 0, n, run.first_kv_tokens + j * n, n))
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
        )
        finished.extend(decode.advance(run.end_s[j], itl_groups))
        start_s = run.end_s[j]
    for gap_s, count in itl_groups:
        itl.gap_s.append(gap_s)
        itl.count.append(count)
    for seq in finished:
        state.release(seq)
    return finished
