"""ReplicaState: one replica's queues and KV pool, and how a finished step advances it. No clock.

The engine calls a policy to get a ``BatchPlan``, waits the plan's cost, then calls ``apply_step``
with the time the step ended. Everything here is plain data and arithmetic, so tests can drive a
replica step by step without simpy.

A running sequence is either *prefilling* (its prompt, or a chunk of it, is being computed; it holds
the KV blocks of its whole prompt) or a member of the ``DecodeSet`` (one token per step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.kv_cache import BlockManager
from simulator.scheduling.batch import BatchPlan
from simulator.scheduling.decode_set import DecodeSet
from simulator.scheduling.sequence import SeqStatus, Sequence
from simulator.scheduling.waiting import WaitingQueue


@dataclass(frozen=True, slots=True)
class ReplicaLimits:
    """The batching limits a policy must respect."""

    max_num_seqs: int
    max_num_batched_tokens: int
    chunk_size: int | None = None  # chunked-prefill token budget per step (sarathi)
    batch_wait_s: float = 0.0  # static: how long the oldest request may wait for a batch to fill
    priority_preemption: bool = False  # preempt less urgent decoders to admit a more urgent request
    swap: bool = False  # preemption copies the KV to host memory (True) or drops it for recomputation


@dataclass(slots=True)
class StepOutcome:
    """What one step produced: finished sequences and inter-token gaps as (gap_s, count) pairs."""

    finished: list[Sequence] = field(default_factory=list)
    itl_groups: list[tuple[float, int]] = field(default_factory=list)
    num_first_tokens: int = 0


class ReplicaState:
    """Waiting queue (most urgent class first, FCFS within a class; preempted sequences return to the
    front of their class), prefilling list, decode set, KV."""

    __slots__ = (
        "decode",
        "index",
        "kv",
        "limits",
        "now_s",
        "num_preemptions",
        "pinned",
        "prefilling",
        "static_batch",
        "static_reserved_blocks",
        "swap_tokens",
        "waiting",
    )

    def __init__(self, index: int, kv: BlockManager, limits: ReplicaLimits) -> None:
        self.index = index
        self.kv = kv
        self.limits = limits
        self.waiting = WaitingQueue()
        self.prefilling: list[Sequence] = []
        self.decode = DecodeSet(kv.block_size)
        self.num_preemptions = 0
        self.now_s = 0.0  # the engine's clock when it asks the policy for a plan
        self.swap_tokens = 0  # KV tokens copied to or from host memory by the plan being made
        self.pinned: list[Sequence] = []  # waiting sequences holding a cached prefix (see use_cached_prefix)
        # Static batching: the batch being served (finished members stay as padding until it ends)
        # and the KV blocks reserved for its members' outputs, not yet handed to the decode set.
        self.static_batch: list[Sequence] = []
        self.static_reserved_blocks = 0

    @property
    def num_running(self) -> int:
        """Sequences holding KV blocks (prefilling or decoding)."""
        return len(self.prefilling) + len(self.decode.members)

    @property
    def num_outstanding(self) -> int:
        """Requests routed here and not finished."""
        return self.waiting.num_waiting + len(self.prefilling) + len(self.decode.members)

    @property
    def has_work(self) -> bool:
        """Whether a step could compute anything."""
        return bool(self.waiting.num_waiting or self.prefilling or self.decode.members)

    def enqueue(self, seq: Sequence) -> None:
        """A new request joins the back of the waiting queue."""
        seq.replica = self.index
        seq.status = SeqStatus.WAITING
        self.waiting.append(seq)

    def use_cached_prefix(self, seq: Sequence) -> None:
        """Before admitting ``seq``: share the cached blocks of its prefix and skip computing them.

        Called when ``seq`` is at the head of the queue; it keeps the reference while it waits there.
        At least one prompt token is always left to compute (the step that samples the first token).
        """
        kv = self.kv
        if seq.prefix_id < 0 or seq.num_shared_blocks or seq.num_computed_tokens or kv.prefixes is None:
            return
        usable = min(kv.cached_prefix_blocks(seq.prefix_id), (seq.num_tokens - 1) // kv.block_size)
        if usable <= 0:
            return
        kv.acquire_prefix(seq.prefix_id)
        seq.num_shared_blocks = usable
        seq.num_computed_tokens = usable * kv.block_size
        self.pinned.append(seq)

    def has_free_blocks(self, num_blocks: int) -> bool:
        """Whether ``num_blocks`` are free, after releasing waiting sequences' cached prefixes if not."""
        if num_blocks > self.kv.num_free_blocks and self.pinned:
            self.unpin_waiting(keep_head=False)
        return num_blocks <= self.kv.num_free_blocks

    def unpin_waiting(self, keep_head: bool = True) -> None:
        """Release the cached prefixes of waiting sequences (but the head's, with ``keep_head``).

        A policy calls this first: a sequence pushed back (a preempted one went to the front) must not
        keep blocks pinned that the new head may need; running sequences short of blocks release all.
        """
        if not self.pinned:
            return
        head = self.waiting[0] if self.waiting and keep_head else None
        keep = []
        for seq in self.pinned:
            if seq.status is not SeqStatus.WAITING:
                continue  # admitted since
            if seq is head:
                keep.append(seq)
                continue
            self.kv.release_prefix(seq.prefix_id)
            seq.num_shared_blocks = 0
            seq.num_computed_tokens = 0
        self.pinned = keep

    def cache_prefix(self, seq: Sequence) -> None:
        """After ``seq`` computed its prompt: its prefix's full blocks join the cache (if not there)."""
        kv = self.kv
        if seq.cache_history and seq.prefix_id >= 0 and kv.prefixes is not None:
            self.cache_history(seq, min(seq.prefix_tokens, seq.num_computed_tokens))
            return
        if seq.prefix_id < 0 or seq.num_shared_blocks or kv.prefixes is None:
            return
        if kv.cached_prefix_blocks(seq.prefix_id):
            return  # computed alongside another sequence that cached it first: keeps its own copy
        num_blocks = min(seq.prefix_tokens, seq.num_computed_tokens) // kv.block_size
        if num_blocks:
            kv.insert_prefix(seq.prefix_id, num_blocks)
            seq.num_blocks -= num_blocks
            seq.num_shared_blocks = num_blocks

    def cache_history(self, seq: Sequence, num_tokens: int) -> None:
        """A session turn: the full blocks of its first ``num_tokens`` tokens become its session's cached
        prefix, or extend it when the turn shares the cached part (the next turn reads them)."""
        kv = self.kv
        cached = kv.cached_prefix_blocks(seq.prefix_id)
        if cached and seq.num_shared_blocks != cached:
            return  # it computed its own copy: the cached one stays
        extra = num_tokens // kv.block_size - cached
        if extra <= 0:
            return
        if cached:
            kv.grow_prefix(seq.prefix_id, extra)
        else:
            kv.insert_prefix(seq.prefix_id, extra)
        seq.num_blocks -= extra
        seq.num_shared_blocks += extra

    def release(self, seq: Sequence) -> None:
        """Free the blocks ``seq`` holds (finished or preempted); its cached prefix stays resident.

        A finished session turn with a next turn first leaves its whole conversation (prompt and answer,
        full blocks) cached for that turn.
        """
        if seq.cache_history and seq.status is SeqStatus.FINISHED and self.kv.prefixes is not None:
            self.cache_history(seq, seq.num_computed_tokens)
        self.kv.free(seq.num_blocks)
        seq.num_blocks = 0
        if seq.num_shared_blocks:
            self.kv.release_prefix(seq.prefix_id)
            seq.num_shared_blocks = 0

    def admit(self, seq: Sequence, num_blocks: int) -> None:
        """Move the head of the waiting queue to prefilling, holding ``num_blocks`` more blocks."""
        self.kv.allocate(num_blocks)
        seq.num_blocks += num_blocks
        if seq.num_shared_blocks and seq in self.pinned:  # its prefix reference now goes with it
            self.pinned.remove(seq)
        if seq.num_swapped_tokens:  # swapped in: its KV comes back from host memory in this step
            self.swap_tokens += seq.num_swapped_tokens
            seq.num_swapped_tokens = 0
        cache = self.kv.prefixes
        if cache is not None and seq.prefix_id >= 0:
            cache.num_prefix_tokens += seq.prefix_tokens
            cache.num_hit_tokens += min(seq.prefix_tokens, seq.num_shared_blocks * self.kv.block_size)
        seq.status = SeqStatus.RUNNING
        self.waiting.popleft()
        self.prefilling.append(seq)

    def preempt_youngest_decoder(self) -> Sequence:
        """Evict the decode set's youngest member by recomputation (vLLM's default preemption)."""
        victim = self.decode.youngest()
        self.decode.remove(victim)
        self._to_front_of_queue(victim)
        return victim

    def preempt_least_urgent_decoder(self, than_priority: int) -> Sequence | None:
        """Evict the youngest of the least urgent decoders if it is less urgent than ``than_priority``."""
        victim = None
        for seq in reversed(self.decode.members):  # youngest first; a tie keeps the younger
            if seq.priority > than_priority and (victim is None or seq.priority > victim.priority):
                victim = seq
        if victim is None:
            return None
        self.decode.remove(victim)
        self._to_front_of_queue(victim)
        return victim

    def _to_front_of_queue(self, victim: Sequence) -> None:
        self.release(victim)
        if self.limits.swap:  # its KV goes to host memory and comes back when it is readmitted
            victim.num_swapped_tokens = victim.num_computed_tokens
            self.swap_tokens += victim.num_computed_tokens
        else:
            victim.num_computed_tokens = 0
        victim.num_preemptions += 1
        victim.status = SeqStatus.WAITING
        self.waiting.appendleft(victim)
        self.num_preemptions += 1

    def running(self) -> list[Sequence]:
        """Prefilling and decoding sequences, the decoders synced (for tests and inspection)."""
        for seq in self.decode.members:
            self.decode.sync(seq)
        return [*self.prefilling, *self.decode.members]


def apply_step(state: ReplicaState, plan: BatchPlan, now_s: float) -> StepOutcome:
    """Advance the planned sequences by the tokens they computed; sample, finish and free."""
    out = StepOutcome()
    if plan.decode:
        for seq in state.decode.advance(now_s, out.itl_groups):
            state.release(seq)
            out.finished.append(seq)
    if not plan.prefills:
        return out
    gaps: dict[float, int] = {}
    done: set[int] = set()
    for seq, chunk in plan.prefills:
        seq.num_computed_tokens += chunk
        if seq.num_computed_tokens < seq.num_tokens:
            continue
        done.add(id(seq))
        state.cache_prefix(seq)
        if seq.num_output_tokens == 0:
            seq.first_token_s = now_s
            out.num_first_tokens += 1
        else:  # a recomputed sequence samples its next token
            gaps[seq.last_token_s] = gaps.get(seq.last_token_s, 0) + 1
        seq.num_output_tokens += 1
        seq.last_token_s = now_s
        if seq.num_output_tokens >= seq.max_output_tokens:
            seq.status = SeqStatus.FINISHED
            seq.finish_s = now_s
            state.release(seq)
            out.finished.append(seq)
        else:
            state.decode.add(seq)
    for last_s, count in gaps.items():
        out.itl_groups.append((now_s - last_s, count))
    if done:
        state.prefilling = [s for s in state.prefilling if id(s) not in done]
    return out
