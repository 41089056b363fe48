"""ReplicaState: one replica's queues and KV pool, and how a finished step advances it. No clock.

The engine calls a policy to get a ``BatchPlan``, waits the plan's cost, then calls ``apply_step``
with the time the step ended. Everything here is plain data and arithmetic, so tests can drive a
replica step by step without simpy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from simulator.kv_cache import BlockManager
from simulator.scheduling.batch import BatchPlan
from simulator.scheduling.sequence import SeqStatus, Sequence


@dataclass(frozen=True, slots=True)
class ReplicaLimits:
    """The batching limits a policy must respect."""

    max_num_seqs: int
    max_num_batched_tokens: int


@dataclass(slots=True)
class StepOutcome:
    """What one step produced: finished sequences and inter-token gaps as (gap_s, count) pairs."""

    finished: list[Sequence] = field(default_factory=list)
    itl_groups: list[tuple[float, int]] = field(default_factory=list)
    num_first_tokens: int = 0


@dataclass(slots=True)
class ReplicaState:
    """Waiting queue (FCFS, preempted sequences return to its front), running list, KV pool."""

    index: int
    kv: BlockManager
    limits: ReplicaLimits
    waiting: deque[Sequence] = field(default_factory=deque)
    running: list[Sequence] = field(default_factory=list)
    num_preemptions: int = 0

    @property
    def num_outstanding(self) -> int:
        """Requests routed here and not finished."""
        return len(self.waiting) + len(self.running)

    @property
    def has_work(self) -> bool:
        """Whether a step could compute anything."""
        return bool(self.waiting or self.running)

    def enqueue(self, seq: Sequence) -> None:
        """A new request joins the back of the waiting queue."""
        seq.replica = self.index
        seq.status = SeqStatus.WAITING
        self.waiting.append(seq)

    def admit(self, seq: Sequence, num_blocks: int) -> None:
        """Move the head of the waiting queue to running, holding ``num_blocks`` more blocks."""
        self.kv.allocate(num_blocks)
        seq.num_blocks += num_blocks
        seq.status = SeqStatus.RUNNING
        self.waiting.popleft()
        self.running.append(seq)

    def preempt_youngest(self) -> Sequence:
        """Evict the most recently admitted running sequence by recomputation (vLLM's default)."""
        victim = self.running.pop()
        self.kv.free(victim.num_blocks)
        victim.num_blocks = 0
        victim.num_computed_tokens = 0
        victim.num_preemptions += 1
        victim.status = SeqStatus.WAITING
        self.waiting.appendleft(victim)
        self.num_preemptions += 1
        return victim


def apply_step(state: ReplicaState, plan: BatchPlan, now_s: float) -> StepOutcome:
    """Advance the planned sequences by the tokens they computed; sample, finish and free."""
    out = StepOutcome()
    gaps: dict[float, int] = {}
    any_finished = False
    for seq, chunk in plan.prefills:
        seq.num_computed_tokens += chunk
        if seq.num_computed_tokens == seq.num_tokens:
            if seq.num_output_tokens == 0:
                seq.first_token_s = now_s
                out.num_first_tokens += 1
            else:
                gaps[seq.last_token_s] = gaps.get(seq.last_token_s, 0) + 1
            any_finished |= _sample(state, seq, now_s, out)
    for seq in plan.decodes:
        seq.num_computed_tokens += 1
        gaps[seq.last_token_s] = gaps.get(seq.last_token_s, 0) + 1
        any_finished |= _sample(state, seq, now_s, out)
    for last_s, count in gaps.items():
        out.itl_groups.append((now_s - last_s, count))
    if any_finished:
        state.running = [s for s in state.running if s.status is SeqStatus.RUNNING]
    return out


def _sample(state: ReplicaState, seq: Sequence, now_s: float, out: StepOutcome) -> bool:
    """One new token for ``seq``; finish it when it has all its output. Returns True if finished."""
    if seq.num_output_tokens:
        gap = now_s - seq.last_token_s
        if gap > seq.max_itl_s:
            seq.max_itl_s = gap
    seq.num_output_tokens += 1
    seq.last_token_s = now_s
    if seq.num_output_tokens < seq.max_output_tokens:
        return False
    seq.status = SeqStatus.FINISHED
    seq.finish_s = now_s
    state.kv.free(seq.num_blocks)
    seq.num_blocks = 0
    out.finished.append(seq)
    return True
