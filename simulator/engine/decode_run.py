"""Decode runs: price k identical decode steps at once, with the arithmetic of k single steps (L4).

When a replica's plan is decode-only and its policy is in ``DECODE_RUN_POLICIES``, the next steps
repeat the same plan until the first member finishes, KV blocks run short, or a request is routed to
this replica. The engine prices a run of such steps here, waits once, and applies the steps that ended
(all of them, or, when a request arrived, those up to the step in progress at its arrival). Each step's
shape, cost, end time, block allocation, log row and inter-token gap are computed exactly as the
step-by-step loop would, float for float, so both modes give identical records
(``tests/test_fast_mode.py``).

Runs are priced in growing pieces: ``FIRST_RUN_STEPS`` steps after an arrival, and each piece that
ends at the step cap twice as long as the last (up to ``MAX_RUN_STEPS``; a run that ends at a finish
keeps the size): a cut throws away the rest of one piece, and pieces stay short on a replica where
arrivals are frequent. Spec-only models price a piece in one
compiled call (``_plan_kernel``, with ``simulator.spec_pricing``'s decode attention) that also writes
the pieces' step-log rows; other models go step by step through ``cost_model.step``. Applying a run
costs the same whatever its length: its rows are copied into the step log, and the members advance
through ``DecodeSet.advance`` at the first and last steps and in O(1) in between. No simpy here: plain
functions of the replica state.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.engine.records import STEP_COLUMNS, ItlLog, StepLog
from simulator.scheduling.decode_set import DecodeSet
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaState
from simulator.speculative import Pricer
from simulator.step_cost import BatchShape

FIRST_RUN_STEPS = 8
"""Steps priced in a run that follows an arrival or a change of batch (the piece doubles from here)."""

MAX_RUN_STEPS = 4096
"""Longest run priced at once."""

COMPILE_AFTER_STEPS = 100_000
"""Decode steps priced in Python, cluster-wide, before runs switch to the compiled kernel
(``simulator.engine.decode_kernel``): loading numba and the kernel costs about 0.7 s, what pricing some
140,000 steps in Python costs, so small simulations never pay it (and later ones in the same process
use the loaded kernel at once)."""


_KERNEL_MODULE = "simulator.engine.decode_kernel"


class CompiledPricing:
    """Shared by a cluster's run planners: the compiled kernel, once enough steps were priced in Python."""

    def __init__(self, after_steps: int | None = None) -> None:
        self.after_steps = COMPILE_AFTER_STEPS if after_steps is None else after_steps
        self.python_steps = 0
        self.kernel: Callable[..., int] | None = None

    def get_kernel(self) -> Callable[..., int] | None:
        """The kernel, imported (and numba loaded) the first time it is due, or at once when an earlier
        simulation in this process loaded it; None before."""
        if self.kernel is None and (self.python_steps >= self.after_steps or _KERNEL_MODULE in sys.modules):
            from simulator.engine.decode_kernel import plan_kernel

            self.kernel = plan_kernel
        return self.kernel


@dataclass(slots=True)
class DecodeRun:
    """The planned steps of a run: their end times, their step-log rows, and the first's inter-token gaps."""

    num_seqs: int
    end_s: np.ndarray  # float64, one per step
    gaps_s: np.ndarray  # end_s[j] - end_s[j - 1]: the inter-token gap step j closes (j >= 1)
    rows: np.ndarray  # one step-log row per step, in the order of STEP_COLUMNS (kv_used_blocks included)
    capped: bool  # stopped at the step cap, not at a finish or a KV shortage

    @property
    def num_steps(self) -> int:
        return len(self.end_s)

    def end_of(self, num_steps: int) -> float:
        """When the run's first ``num_steps`` steps have ended."""
        return float(self.end_s[num_steps - 1])

    @property
    def start_used_blocks(self) -> int:
        """KV blocks the replica held when the run was planned (its first step allocates none)."""
        return int(self.rows[0, 7])

    def kv_used_after(self, num_steps: int) -> int:
        """KV blocks the replica holds once the run's first ``num_steps`` steps have begun."""
        return int(self.rows[num_steps - 1, 7])  # kv_used_blocks

    def steps_begun_by(self, now_s: float) -> int:
        """The steps that ended before ``now_s`` plus the one in progress at ``now_s``."""
        return bisect_left(self.end_s, now_s) + 1


class RunPlanner:
    """Plans one replica's decode runs with its cost model (and the per-batch-size terms it memoizes).

    Compiled plans are written into buffers the planner owns: a run must be applied (or dropped) before
    the replica plans the next, as the engine does."""

    def __init__(self, cost_model: Pricer, overhead_s: float, compiled: CompiledPricing) -> None:
        self.cost_model = cost_model
        self.overhead_s = overhead_s
        self.compiled = compiled
        self.piece_steps = FIRST_RUN_STEPS  # the next run's step cap
        self._terms: dict[int, np.ndarray | None] = {}
        self._end_s = np.empty(MAX_RUN_STEPS)
        self._gaps_s = np.empty(MAX_RUN_STEPS)
        self._rows = np.empty((MAX_RUN_STEPS, len(STEP_COLUMNS)))

    def _terms_for(self, num_seqs: int) -> np.ndarray | None:
        if num_seqs not in self._terms:
            terms = self.cost_model.decode_run_terms(num_seqs)
            self._terms[num_seqs] = None if terms is None else np.array(terms, dtype=np.float64)
        return self._terms[num_seqs]

    def ended(self, run: DecodeRun, cut: bool) -> None:
        """Size the next piece: small again after a cut by an arrival, twice as long after one that
        reached its cap uncut; the same after one that ended at a finish."""
        if cut:
            self.piece_steps = FIRST_RUN_STEPS
        elif run.capped:
            self.piece_steps = min(2 * self.piece_steps, MAX_RUN_STEPS)

    def restart(self) -> None:
        """The replica took a step that was not a run (a prefill, a preemption): start small again."""
        self.piece_steps = FIRST_RUN_STEPS

    def plan(self, state: ReplicaState, start_s: float) -> DecodeRun | None:
        """The run that starts with the decode step the policy just planned; None when it is one step.

        It stops after ``piece_steps`` steps, at the first finish, or before the first step whose blocks
        are not free. Stopping at any step boundary is exact: the next plan repeats the run's step.
        """
        decode, kv = state.decode, state.kv
        max_steps = self.piece_steps
        next_finish = decode.next_finish_step()
        capped = next_finish is None or next_finish - decode.step > max_steps
        if not capped:
            assert next_finish is not None
            max_steps = next_finish - decode.step
        if max_steps < 2:
            return None
        n = len(decode)
        terms = self._terms_for(n)
        kernel = None if terms is None else self.compiled.get_kernel()
        if kernel is None:
            count, end_s, gaps_s, rows = self._plan_step_by_step(state, start_s, max_steps)
            self.compiled.python_steps += count
        else:
            end_s, gaps_s, rows = self._end_s, self._gaps_s, self._rows
            count = kernel(
                end_s,
                gaps_s,
                rows,
                terms,
                n,
                decode.num_kv_tokens,
                decode.block_histogram,
                decode.step,
                kv.num_free_blocks,  # after step 0's blocks
                max_steps,
                start_s,
                self.overhead_s,
                state.index,
                kv.num_used_blocks,
            )
        if count < 2:
            return None
        return DecodeRun(n, end_s[:count], gaps_s[:count], rows[:count], capped and count == max_steps)

    def _plan_step_by_step(
        self, state: ReplicaState, start_s: float, max_steps: int
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """``plan_kernel``'s work through ``cost_model.step`` (calibrated, pipelined, attention-DP or
        speculative models, and every model until ``CompiledPricing`` switches)."""
        decode, cost_model = state.decode, self.cost_model
        n, kv0 = len(decode), decode.num_kv_tokens
        free, used = state.kv.num_free_blocks, state.kv.num_used_blocks
        rows: list[tuple[float, ...]] = []
        end_s: list[float] = []
        t = start_s
        for j in range(max_steps):
            need = decode.num_new_blocks_at(decode.step + j) if j else 0
            if need > free:
                break
            free -= need
            used += need
            cost = cost_model.step(BatchShape(0, 0, 0.0, 0, n, kv0 + j * n, n))
            d = cost.time_s + self.overhead_s
            rows.append((state.index, t, d, n, 0, n, 0, used, cost.flops, cost.num_bytes))  # STEP_COLUMNS
            t = t + d
            end_s.append(t)
        ends = np.array(end_s)
        gaps_s = np.zeros(len(ends))
        gaps_s[1:] = ends[1:] - ends[:-1]
        return len(ends), ends, gaps_s, np.array(rows, dtype=np.float64).reshape(-1, len(STEP_COLUMNS))


def apply_decode_run(
    state: ReplicaState,
    run: DecodeRun,
    num_steps: int,
    steps: StepLog,
    itl: ItlLog,
    already_allocated: int = 0,
) -> list[Sequence]:
    """Apply the run's first ``num_steps`` steps: allocate (less the ``already_allocated`` blocks of its
    steps begun earlier), log, advance the decode set; return the finished sequences."""
    kv = state.kv
    kv.allocate(run.kv_used_after(num_steps) - run.start_used_blocks - already_allocated)
    steps.data.frombytes(run.rows[:num_steps].tobytes())
    finished = _advance(state.decode, run, num_steps, itl)
    for seq in finished:
        state.release(seq)
    return finished


def _advance(decode: DecodeSet, run: DecodeRun, num_steps: int, itl: ItlLog) -> list[Sequence]:
    """The decode set after the run's first ``num_steps`` steps; their gaps into ``itl``, in order.

    The first and last steps go through ``DecodeSet.advance`` (the first closes the gaps of members
    that joined since the last step, the last finishes members); in between every member continues and
    none finishes (the run ends at the first finish), so each step adds one gap shared by all members.
    """
    groups: list[tuple[float, int]] = []
    finished = decode.advance(float(run.end_s[0]), groups)
    if num_steps > 1:
        assert not finished and decode.num_continuing == len(decode)
        _append(itl, groups)
        groups.clear()
        num_inner = num_steps - 2  # steps 1 .. k-2 close one gap each, shared by every member
        itl.gap_s.frombytes(run.gaps_s[1 : num_steps - 1].tobytes())
        itl.count.extend(array("q", [len(decode)]) * num_inner)
        decode.step += num_inner
        decode.last_step_end_s = float(run.end_s[num_steps - 2])
        finished = decode.advance(float(run.end_s[num_steps - 1]), groups)
    _append(itl, groups)
    return finished


def _append(itl: ItlLog, groups: list[tuple[float, int]]) -> None:
    for gap_s, count in groups:
        itl.gap_s.append(gap_s)
        itl.count.append(count)
