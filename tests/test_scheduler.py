"""Scheduling without a clock: the vLLM policy's plans, ``apply_step``, the O(1) DecodeSet, routers.

Everything here drives ``ReplicaState`` / ``DecodeSet`` by hand (no simpy): build the state, call the
policy, assert the plan; advance with ``apply_step`` at made-up times and assert the token counts.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import UnknownNameError
from simulator.kv_cache import BlockManager
from simulator.scheduling.decode_set import DecodeSet
from simulator.scheduling.policies import get_replica_policy, vllm_policy
from simulator.scheduling.routers import RouterContext, least_outstanding, round_robin
from simulator.scheduling.sequence import SeqStatus, Sequence
from simulator.scheduling.state import ReplicaLimits, ReplicaState, apply_step


def _state(
    num_blocks: int = 100, block_size: int = 16, max_seqs: int = 256, max_tokens: int = 8192
) -> ReplicaState:
    return ReplicaState(0, BlockManager(num_blocks, block_size), ReplicaLimits(max_seqs, max_tokens))


def _enqueue(state: ReplicaState, *lengths: tuple[int, int]) -> list[Sequence]:
    seqs = [Sequence(i, 0.0, prompt, output) for i, (prompt, output) in enumerate(lengths)]
    for seq in seqs:
        state.enqueue(seq)
    return seqs


def _held(state: ReplicaState) -> int:
    return sum(s.num_blocks for s in state.running())


def test_waiting_prompts_are_admitted_fcfs_with_their_prompt_blocks() -> None:
    state = _state()
    a, b, c = _enqueue(state, (20, 5), (33, 5), (16, 5))
    plan = vllm_policy(state)
    assert plan.prefills == [(a, 20), (b, 33), (c, 16)]
    assert not plan.decode and plan.num_prefill_tokens == 69 and plan.num_seqs == 3
    assert [s.num_blocks for s in (a, b, c)] == [2, 3, 1]
    assert state.kv.num_free_blocks == 94 and not state.waiting
    assert all(s.status is SeqStatus.RUNNING for s in (a, b, c))


def test_max_num_seqs_counts_running_sequences() -> None:
    state = _state(max_seqs=2)
    a, b, c = _enqueue(state, (10, 5), (10, 5), (10, 5))
    plan = vllm_policy(state)
    assert [s for s, _ in plan.prefills] == [a, b] and list(state.waiting) == [c]
    apply_step(state, plan, 1.0)
    plan = vllm_policy(state)  # both slots are held by decoding sequences: c waits, they decode
    assert not plan.prefills and plan.num_decode_tokens == 2 and list(state.waiting) == [c]


def test_token_budget_and_a_long_prompt_admitted_alone() -> None:
    state = _state(max_tokens=100)
    a, b, long, d = _enqueue(state, (60, 2), (50, 2), (150, 2), (10, 2))
    plan = vllm_policy(state)
    assert plan.prefills == [(a, 60)]  # b does not fit the 40 tokens left
    apply_step(state, plan, 1.0)
    plan = vllm_policy(state)
    assert plan.prefills == [(b, 50)]  # prefill priority: a waits; 150 > the 50 tokens left
    apply_step(state, plan, 2.0)
    plan = vllm_policy(state)
    assert plan.prefills == [(long, 150)]  # longer than the whole budget: admitted alone, d waits
    assert list(state.waiting) == [d] and plan.shape().num_prefill_tokens == 150


def test_watermark_keeps_one_percent_free_when_others_run() -> None:
    state = _state(num_blocks=1000, block_size=16)
    _enqueue(state, (160, 50))
    apply_step(state, vllm_policy(state), 1.0)  # a holds 10 blocks: 990 free, watermark 10
    big = Sequence(1, 0.0, 981 * 16, 2)
    state.enqueue(big)
    plan = vllm_policy(state)
    assert not plan.prefills and plan.decode  # 981 + 10 > 990: a decodes instead
    apply_step(state, plan, 2.0)
    assert state.kv.num_free_blocks == 989  # a's 161st token opened its 11th block
    fits = Sequence(2, 0.0, 979 * 16, 2)
    state.waiting.popleft()
    state.enqueue(fits)  # 979 + 10 <= 989
    assert vllm_policy(state).prefills == [(fits, 979 * 16)]
    alone = _state(num_blocks=1000)
    (whole,) = _enqueue(alone, (1000 * 16, 2))
    assert vllm_policy(alone).prefills == [(whole, 16000)]  # nothing running: no watermark
    assert alone.kv.num_free_blocks == 0


def test_prefill_priority_then_decode_of_every_running_sequence() -> None:
    state = _state(block_size=4)
    a, b = _enqueue(state, (8, 10), (6, 10))
    apply_step(state, vllm_policy(state), 1.0)
    c = Sequence(2, 1.0, 3, 10)
    state.enqueue(c)
    plan = vllm_policy(state)
    assert plan.prefills == [(c, 3)] and not plan.decode and plan.num_decode_tokens == 0
    apply_step(state, plan, 2.0)
    plan = vllm_policy(state)
    assert plan.decode and plan.num_decode_tokens == 3 and plan.decode_kv_tokens == 9 + 7 + 4
    assert plan.shape().num_logit_tokens == 3 and plan.shape().num_prefill_tokens == 0
    out = apply_step(state, plan, 3.0)
    assert sorted(out.itl_groups) == [(1.0, 1), (2.0, 2)]  # a and b waited through c's prefill
    state.running()  # syncs the decoders' counters
    counts = [(s.num_output_tokens, s.num_computed_tokens, s.num_blocks) for s in (a, b, c)]
    assert counts == [(2, 9, 3), (2, 7, 2), (2, 4, 1)]
    assert _held(state) + state.kv.num_free_blocks == state.kv.num_blocks


def test_preemption_evicts_the_youngest_decoder_by_recomputation() -> None:
    state = _state(num_blocks=6, block_size=4)  # watermark int(0.06) = 0
    a, b, c = _enqueue(state, (8, 4), (8, 4), (7, 10))
    apply_step(state, vllm_policy(state), 1.0)  # each holds 2 blocks: the pool is full
    plan = vllm_policy(state)  # a and b need a third block each: c, the youngest, goes
    assert plan.preempted == [c] and plan.decode and plan.num_decode_tokens == 2
    assert plan.decode_kv_tokens == 18 and state.kv.num_free_blocks == 0
    assert list(state.waiting) == [c] and c.status is SeqStatus.WAITING
    assert (c.num_computed_tokens, c.num_blocks, c.num_preemptions, c.num_output_tokens) == (0, 0, 1, 1)
    assert state.num_preemptions == 1
    apply_step(state, plan, 2.0)
    for now in (3.0, 3.5):  # c waits for blocks while a and b decode to their 4th token
        plan = vllm_policy(state)
        assert not plan.prefills and plan.num_decode_tokens == 2
        out = apply_step(state, plan, now)
    assert out.finished == [a, b] and a.finish_s == 3.5 and state.kv.num_free_blocks == 6
    plan = vllm_policy(state)
    assert plan.prefills == [(c, 8)]  # its prompt and the token generated before the preemption
    out = apply_step(state, plan, 4.0)
    assert c.first_token_s == 1.0 and c.num_output_tokens == 2 and out.num_first_tokens == 0
    assert out.itl_groups == [(3.0, 1)]  # from its token at 1 s to the next at 4 s
    assert c.num_blocks == 2 and state.kv.num_free_blocks == 4


def test_apply_step_first_tokens_finishes_and_frees() -> None:
    state = _state(block_size=16)
    one, three = _enqueue(state, (40, 1), (17, 3))
    out = apply_step(state, vllm_policy(state), 0.5)
    assert out.num_first_tokens == 2 and out.finished == [one]
    assert (one.status, one.first_token_s, one.finish_s, one.num_blocks) == (SeqStatus.FINISHED, 0.5, 0.5, 0)
    assert (three.num_output_tokens, three.num_computed_tokens, three.num_blocks) == (1, 17, 2)
    assert state.kv.num_free_blocks == 98 and three in state.decode.members
    apply_step(state, vllm_policy(state), 0.75)
    out = apply_step(state, vllm_policy(state), 1.25)
    assert out.finished == [three] and three.finish_s == 1.25 and three.num_output_tokens == 3
    assert three.first_token_s == 0.5 and three.num_blocks == 0
    assert state.kv.num_free_blocks == 100 and not state.has_work


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(1, 60), st.integers(1, 30)), min_size=1, max_size=12),
    block_size=st.integers(1, 8),
    spare_blocks=st.integers(0, 20),
    max_seqs=st.integers(1, 6),
    max_tokens=st.integers(1, 128),
)
def test_policy_loop_conserves_blocks_and_finishes_everything(
    lengths: list[tuple[int, int]], block_size: int, spare_blocks: int, max_seqs: int, max_tokens: int
) -> None:
    """A replica driven step by step: KV conserved after every step, every request served in full."""
    need = max(-(-(p + o - 1) // block_size) for p, o in lengths)  # the largest request fits alone
    state = _state(need + spare_blocks, block_size, max_seqs, max_tokens)
    seqs = _enqueue(state, *lengths)
    for step in range(1, 10_000):
        if not state.has_work:
            break
        plan = vllm_policy(state)
        assert not plan.is_empty and plan.num_seqs <= max_seqs
        apply_step(state, plan, float(step))
        assert _held(state) + state.kv.num_free_blocks == state.kv.num_blocks
        assert all(s.num_blocks == state.kv.blocks_for(s.num_computed_tokens) for s in state.running())
    assert all(s.status is SeqStatus.FINISHED for s in seqs)
    assert [s.num_output_tokens for s in seqs] == [o for _, o in lengths]
    assert state.kv.num_free_blocks == state.kv.num_blocks
    assert state.num_preemptions == sum(s.num_preemptions for s in seqs)


class _Ref:
    """The naive twin of one DecodeSet member: every counter updated every step."""

    def __init__(self, seq: Sequence, block_size: int) -> None:
        self.tokens = seq.num_tokens  # prompt + output; the last token's KV is not computed yet
        self.out, self.max_out = seq.num_output_tokens, seq.max_output_tokens
        self.last_s, self.bs = seq.last_token_s, block_size

    @property
    def blocks(self) -> int:
        return -(-(self.tokens - 1) // self.bs)

    @property
    def new_blocks(self) -> int:
        return -(-self.tokens // self.bs) - self.blocks


def _check(ds: DecodeSet, kv: BlockManager, refs: dict[Sequence, _Ref], sync: bool) -> None:
    assert list(ds.members) == list(refs) and len(ds) == len(refs)
    assert ds.num_kv_tokens == sum(r.tokens for r in refs.values())
    assert ds.num_new_blocks() == sum(r.new_blocks for r in refs.values())
    assert kv.num_free_blocks + sum(r.blocks for r in refs.values()) == kv.num_blocks
    if sync:
        for seq, ref in refs.items():
            ds.sync(seq)
            counts = (seq.num_tokens, seq.num_computed_tokens, seq.num_output_tokens)
            assert counts == (ref.tokens, ref.tokens - 1, ref.out)
            assert seq.num_blocks == ref.blocks and seq.last_token_s == ref.last_s


def _drive_decode_set(block_size: int, ops: list[tuple[str, int, int, int]]) -> None:
    kv, ds = BlockManager(100_000, block_size), DecodeSet(block_size)
    refs: dict[Sequence, _Ref] = {}
    now = 0.0
    for i, (op, a, b, c) in enumerate(ops):
        now += 0.25 + 0.125 * (c % 4)  # a join or a step happens at a later time
        if op == "join":  # prefilled (or recomputed) with c % 3 + 1 tokens generated so far
            seq = Sequence(i, 0.0, a, b + c % 3 + 1)
            seq.num_output_tokens = c % 3 + 1
            seq.num_computed_tokens = seq.num_tokens - 1
            seq.num_blocks = kv.blocks_for(seq.num_computed_tokens)
            seq.last_token_s, seq.status = now, SeqStatus.RUNNING
            kv.allocate(seq.num_blocks)
            ds.add(seq)
            refs[seq] = _Ref(seq, block_size)
        elif op == "step" and refs:
            kv.allocate(ds.num_new_blocks())
            groups: list[tuple[float, int]] = []
            finished = ds.advance(now, groups)
            merged: Counter[float] = Counter()
            for gap, count in groups:
                merged[gap] += count
            assert merged == Counter(now - r.last_s for r in refs.values())
            for r in refs.values():
                r.tokens, r.out, r.last_s = r.tokens + 1, r.out + 1, now
            done = [s for s, r in refs.items() if r.out == r.max_out]
            assert sorted(s.request_id for s in finished) == sorted(s.request_id for s in done)
            for seq in finished:
                assert (seq.status, seq.finish_s, seq.num_output_tokens) == (
                    SeqStatus.FINISHED,
                    now,
                    refs[seq].out,
                )
                assert seq.num_blocks == refs.pop(seq).blocks
                kv.free(seq.num_blocks)
        elif op == "remove" and refs:  # a preemption: synced, then its blocks go back
            seq = list(refs)[a % len(refs)]
            ds.remove(seq)
            ref = refs.pop(seq)
            assert (seq.num_output_tokens, seq.num_blocks, seq.last_token_s) == (
                ref.out,
                ref.blocks,
                ref.last_s,
            )
            kv.free(seq.num_blocks)
        _check(ds, kv, refs, sync=op == "sync")
    _check(ds, kv, refs, sync=True)


def test_decode_set_matches_the_naive_reference_step_by_step() -> None:
    ops = [("join", 5, 3, 0), ("step", 0, 0, 0), ("join", 8, 0, 1), ("join", 1, 6, 2), ("step", 0, 0, 3)]
    ops += [("remove", 1, 0, 0), ("step", 0, 0, 1), ("sync", 0, 0, 0), ("join", 4, 2, 0)]
    ops += [("step", 0, 0, 2)] * 8
    _drive_decode_set(4, ops)


@settings(max_examples=150, deadline=None)
@given(
    block_size=st.integers(1, 9),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["join", "step", "step", "remove", "sync"]),
            st.integers(1, 50),
            st.integers(0, 12),
            st.integers(0, 11),
        ),
        max_size=60,
    ),
)
def test_decode_set_aggregates_equal_naive_sums(
    block_size: int, ops: list[tuple[str, int, int, int]]
) -> None:
    _drive_decode_set(block_size, ops)


def test_routers_and_policy_registry() -> None:
    ctx = RouterContext(rng=np.random.default_rng(0))
    replicas = [_state() for _ in range(3)]
    probe = Sequence(0, 0.0, 1, 1)
    assert [round_robin(ctx, replicas, probe) for _ in range(5)] == [0, 1, 2, 0, 1]
    _enqueue(replicas[0], (1, 1), (1, 1))
    _enqueue(replicas[2], (1, 1))
    ctx = RouterContext(rng=np.random.default_rng(0))
    assert least_outstanding(ctx, replicas, probe) == 1
    replicas[1].enqueue(Sequence(5, 0.0, 1, 1))
    assert [least_outstanding(ctx, replicas, probe) for _ in range(2)] == [2, 1]  # tie: round-robin
    assert get_replica_policy("vllm") is vllm_policy
    with pytest.raises(UnknownNameError, match="vllm"):
        get_replica_policy("fifo")
