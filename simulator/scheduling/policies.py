"""Replica batching policies: plain functions ``(ReplicaState) -> BatchPlan``, registered by name.

A policy decides which sequences compute how many tokens in the next step, admitting waiting requests
(allocating their KV blocks) and preempting running ones when blocks run out. It never advances time.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.errors import UnknownNameError
from simulator.scheduling.batch import BatchPlan
from simulator.scheduling.sequence import SeqStatus, Sequence
from simulator.scheduling.state import ReplicaState

ReplicaPolicy = Callable[[ReplicaState], BatchPlan]

# vLLM keeps 1% of the KV blocks free when admitting a prompt, so that the requests just admitted are
# not preempted by the next decode step (vllm/core/block_manager: watermark=0.01).
ADMISSION_WATERMARK_FRAC = 0.01


def vllm_policy(state: ReplicaState) -> BatchPlan:
    """Continuous batching with prefill priority (vLLM v0's default scheduler, no chunking).

    If waiting prompts can be admitted (sequence slots, token budget, KV blocks for the whole prompt),
    the step prefills them and running sequences wait one step; otherwise every running sequence
    decodes one token, preempting the youngest by recomputation while blocks are short.
    A prompt longer than ``max_num_batched_tokens`` is admitted alone, in a step of its own.
    """
    state.unpin_waiting()
    if state.waiting:
        plan = BatchPlan()
        _make_room_for_urgent(state, plan)
        budget = state.limits.max_num_batched_tokens
        _admit_waiting(state, plan, budget, chunked=False, thrashing=False, long_prompt_needs_idle=False)
        if plan.prefills:
            return plan
    else:
        plan = BatchPlan()
    return _decode_all(state, plan)


def _make_room_for_urgent(state: ReplicaState, plan: BatchPlan) -> None:
    """Priority classes: preempt less urgent decoders while the most urgent waiting prompt lacks blocks.

    The victims (youngest of the least urgent first) return to the front of their own, less urgent,
    class, so the urgent prompt is admitted ahead of them and nothing thrashes.
    """
    if not state.limits.priority_preemption or not state.waiting or not state.decode.members:
        return
    head = state.waiting[0]
    kv = state.kv
    state.use_cached_prefix(head)
    need = kv.num_new_blocks(head.num_held_blocks, head.num_tokens) + int(
        ADMISSION_WATERMARK_FRAC * kv.num_blocks
    )
    while need > kv.num_free_blocks:
        victim = state.preempt_least_urgent_decoder(head.priority)
        if victim is None:
            return
        plan.preempted.append(victim)


def _decode_all(state: ReplicaState, plan: BatchPlan) -> BatchPlan:
    """Every decoding sequence computes one token; preempt the youngest while blocks are short."""
    decode = state.decode
    kv = state.kv
    while decode.members and not state.has_free_blocks(decode.num_new_blocks()):
        plan.preempted.append(state.preempt_youngest_decoder())
    if decode.members:
        kv.allocate(decode.num_new_blocks())
        plan.decode = True
        plan.num_decode_tokens = len(decode)
        plan.decode_kv_tokens = decode.num_kv_tokens
    return plan


def orca_policy(state: ReplicaState) -> BatchPlan:
    """Iteration-level batching without chunking (Orca): decodes and whole new prompts share a step.

    Every decoding sequence computes one token (preempting the youngest while blocks are short); waiting
    prompts that fit whole in the rest of ``max_num_batched_tokens`` join the same step. A prompt longer
    than the whole budget runs alone once nothing else is running.
    """
    state.unpin_waiting()
    plan = BatchPlan()
    _make_room_for_urgent(state, plan)
    num_urgent_victims = len(plan.preempted)
    _decode_all(state, plan)
    budget = state.limits.max_num_batched_tokens - plan.num_decode_tokens
    _admit_waiting(state, plan, budget, chunked=False, thrashing=len(plan.preempted) > num_urgent_victims)
    return plan


def sarathi_policy(state: ReplicaState) -> BatchPlan:
    """Chunked prefill with a per-step token budget (Sarathi-Serve; vLLM v1's default).

    The budget is ``scheduler.chunk_size`` (default ``max_num_batched_tokens``). Decodes go first, one
    token each; then prompts already being prefilled continue with a chunk; then waiting prompts are
    admitted with chunks of what is left. A long prompt is split over several steps, interleaved with
    decodes, so it no longer stalls them for a whole prefill.
    """
    state.unpin_waiting()
    plan = BatchPlan()
    _make_room_for_urgent(state, plan)
    num_urgent_victims = len(plan.preempted)
    _decode_all(state, plan)
    limits = state.limits
    budget = (limits.chunk_size or limits.max_num_batched_tokens) - plan.num_decode_tokens
    kv = state.kv
    for seq in state.prefilling:
        if budget <= 0:
            break
        chunk = min(seq.num_uncomputed_tokens, budget)
        need = kv.num_new_blocks(seq.num_held_blocks, seq.num_computed_tokens + chunk)
        if not state.has_free_blocks(need):
            break
        kv.allocate(need)
        seq.num_blocks += need
        plan.prefills.append((seq, chunk))
        budget -= chunk
    _admit_waiting(state, plan, budget, chunked=True, thrashing=len(plan.preempted) > num_urgent_victims)
    return plan


def _admit_waiting(
    state: ReplicaState,
    plan: BatchPlan,
    budget: int,
    *,
    chunked: bool,
    thrashing: bool,
    long_prompt_needs_idle: bool = True,
) -> None:
    """Admit waiting prompts FCFS into ``plan`` within ``budget`` tokens, sequence slots and KV blocks.

    Unchunked, a prompt longer than the budget is admitted alone: as the first prefill of a step whose
    decodes wait (vllm), or, with ``long_prompt_needs_idle``, once nothing else runs (orca). Nothing is
    admitted in a step whose decodes were short of blocks (``thrashing``, as vLLM v1): the evicted
    sequence would come straight back and thrash the cache.
    """
    if thrashing:
        return
    limits, kv = state.limits, state.kv
    watermark = int(ADMISSION_WATERMARK_FRAC * kv.num_blocks)
    num_seqs = state.num_running
    while state.waiting and num_seqs < limits.max_num_seqs and budget > 0:
        seq = state.waiting[0]
        state.use_cached_prefix(seq)
        num_new = seq.num_uncomputed_tokens
        if chunked:
            num_new = min(num_new, budget)
        elif num_new > budget and (plan.prefills or (long_prompt_needs_idle and num_seqs)):
            break  # a prompt over the budget runs alone
        need = kv.num_new_blocks(seq.num_held_blocks, seq.num_computed_tokens + num_new)
        if need + (watermark if num_seqs else 0) > kv.num_free_blocks:
            break
        state.admit(seq, need)
        plan.prefills.append((seq, num_new))
        budget -= num_new
        num_seqs += 1


def static_policy(state: ReplicaState) -> BatchPlan:
    """Request-level batching (FasterTransformer-style): form a batch, run it to its longest request.

    A batch is formed when ``max_num_seqs`` requests wait or the oldest has waited
    ``scheduler.batch_wait_s``; its members' prompts run in one forward pass (``max_num_batched_tokens``
    does not apply) with KV blocks reserved for prompt plus output, so nothing is ever preempted. Members that
    finish stay in the batch as padding rows (they are still computed, and read their KV) until the
    longest ends; nobody joins a running batch.
    """
    state.unpin_waiting()
    batch = state.static_batch
    if batch and (state.prefilling or state.decode.members):
        return _decode_static_batch(state, batch)
    if batch:  # the batch has ended: release the reserve and form the next
        state.kv.free(state.static_reserved_blocks)
        state.static_reserved_blocks = 0
        batch.clear()
    waiting, limits = state.waiting, state.limits
    if not waiting:
        return BatchPlan()
    fill_by_s = waiting[0].arrival_s + limits.batch_wait_s
    if len(waiting) < limits.max_num_seqs and state.now_s < fill_by_s:
        return BatchPlan(wait_until_s=fill_by_s)
    return _form_static_batch(state)


def _form_static_batch(state: ReplicaState) -> BatchPlan:
    plan = BatchPlan()
    kv, limits = state.kv, state.limits
    while state.waiting and len(plan.prefills) < limits.max_num_seqs:
        seq = state.waiting[0]
        state.use_cached_prefix(seq)
        prompt = seq.num_uncomputed_tokens
        need = kv.num_new_blocks(seq.num_held_blocks, seq.num_tokens)
        # the KV peaks at prompt + output - 1 tokens (the last sampled token is never computed)
        peak = kv.blocks_for(seq.num_prompt_tokens + seq.max_output_tokens - 1)
        reserve = max(0, peak - need - seq.num_held_blocks)
        if need + reserve > kv.num_free_blocks:
            break
        state.admit(seq, need)
        kv.allocate(reserve)
        state.static_reserved_blocks += reserve
        state.static_batch.append(seq)
        plan.prefills.append((seq, prompt))
    return plan


def _decode_static_batch(state: ReplicaState, batch: list[Sequence]) -> BatchPlan:
    """The batch's live members decode (from the reserve); finished members are computed as padding."""
    need = state.decode.num_new_blocks()
    take = min(need, state.static_reserved_blocks)
    state.kv.free(take)
    state.static_reserved_blocks -= take
    plan = _decode_all(state, BatchPlan())
    padding = [s for s in batch if s.status is SeqStatus.FINISHED]
    plan.num_decode_tokens += len(padding)
    plan.decode_kv_tokens += sum(s.num_tokens for s in padding)
    return plan


REPLICA_POLICIES: dict[str, ReplicaPolicy] = {
    "static": static_policy,
    "vllm": vllm_policy,
    "orca": orca_policy,
    "sarathi": sarathi_policy,
}


# Policies whose decode-only plan repeats unchanged until a member finishes, KV blocks run short or a
# request arrives: while decoding, nothing they look at can unblock a waiting prompt (free blocks only
# shrink, sequence slots stay taken). The engine may price such runs of decode steps at once.
DECODE_RUN_POLICIES = frozenset({"vllm", "orca", "sarathi"})


def get_replica_policy(name: str) -> ReplicaPolicy:
    """The policy registered as ``name``; an unknown name lists the known ones."""
    try:
        return REPLICA_POLICIES[name]
    except KeyError:
        raise UnknownNameError("scheduler.policy", name, REPLICA_POLICIES) from None
