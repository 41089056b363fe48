"""Replica batching policies: plain functions ``(ReplicaState) -> BatchPlan``, registered by name.

A policy decides which sequences compute how many tokens in the next step, admitting waiting requests
(allocating their KV blocks) and preempting running ones when blocks run out. It never advances time.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.errors import UnknownNameError
from simulator.scheduling.batch import BatchPlan
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
    if state.waiting:
        plan = _admit_prompts(state)
        if plan.prefills:
            return plan
    else:
        plan = BatchPlan()
    return _decode_all(state, plan)


def _admit_prompts(state: ReplicaState) -> BatchPlan:
    plan = BatchPlan()
    limits = state.limits
    kv = state.kv
    watermark = int(ADMISSION_WATERMARK_FRAC * kv.num_blocks)
    budget = limits.max_num_batched_tokens
    num_seqs = state.num_running
    while state.waiting and num_seqs < limits.max_num_seqs:
        seq = state.waiting[0]
        num_new = seq.num_uncomputed_tokens
        if plan.prefills and num_new > budget:
            break
        need = kv.num_new_blocks(seq.num_blocks, seq.num_tokens)
        if need + watermark > kv.num_free_blocks and (state.num_running or plan.prefills):
            break
        if need > kv.num_free_blocks:
            break
        state.admit(seq, need)
        plan.prefills.append((seq, num_new))
        budget -= num_new
        num_seqs += 1
    return plan


def _decode_all(state: ReplicaState, plan: BatchPlan) -> BatchPlan:
    """Every decoding sequence computes one token; preempt the youngest while blocks are short."""
    decode = state.decode
    kv = state.kv
    while decode.members and decode.num_new_blocks() > kv.num_free_blocks:
        plan.preempted.append(state.preempt_youngest_decoder())
    if decode.members:
        kv.allocate(decode.num_new_blocks())
        plan.decode = True
        plan.num_decode_tokens = len(decode)
        plan.decode_kv_tokens = decode.num_kv_tokens
    return plan


REPLICA_POLICIES: dict[str, ReplicaPolicy] = {
    "vllm": vllm_policy,
}


# Policies whose decode-only plan repeats unchanged until a member finishes, KV blocks run short or a
# request arrives: while decoding, nothing they look at can unblock a waiting prompt (free blocks only
# shrink, sequence slots stay taken). The engine may price such runs of decode steps at once.
DECODE_RUN_POLICIES = frozenset({"vllm"})


def get_replica_policy(name: str) -> ReplicaPolicy:
    """The policy registered as ``name``; an unknown name lists the known ones."""
    try:
        return REPLICA_POLICIES[name]
    except KeyError:
        raise UnknownNameError("scheduler.policy", name, REPLICA_POLICIES) from None
