"""Per-operator FLOPs and bytes against hand-computed numbers and against each other."""

from __future__ import annotations

import pytest

from simulator.model import costs


def test_gemm_cost_by_hand() -> None:
    # 2 x 3 x 4 GEMM, 1-byte weights: flops 2*2*3*4 = 48; bytes 3*4*1 + (2*4 + 2*3)*2 = 12 + 28 = 40
    assert costs.gemm_cost(2, 3, 4, 1.0) == costs.OpCost(48.0, 40.0)


def test_causal_pairs() -> None:
    assert costs.causal_pairs(4, 0) == 10.0  # 1 + 2 + 3 + 4
    assert costs.causal_pairs(2, 3) == 9.0  # queries at positions 4 and 5 see 4 + 5 keys


def test_prefill_attention_by_hand() -> None:
    # c=2 new after p=3, h=4, g=2, d=8, kv 2 bytes
    cost = costs.attention_prefill_cost(2, 3, 4, 2, 8, 2.0)
    assert cost.flops == 4 * 8 * 4 * 9  # 4 d h x pairs
    assert cost.num_bytes == 2 * 2 * 4 * 8 * 2 + 2 * 5 * 2 * 8 * 2  # Q and O + K and V of p + c


def test_chunked_prefill_does_the_same_attention_flops() -> None:
    args = (32, 8, 128, 2.0)
    whole = costs.attention_prefill_cost(1000, 0, *args)
    first, second = costs.attention_prefill_cost(600, 0, *args), costs.attention_prefill_cost(400, 600, *args)
    assert first.flops + second.flops == pytest.approx(whole.flops)
    assert first.num_bytes + second.num_bytes > whole.num_bytes  # the second chunk re-reads the first's KV


def test_decode_is_a_one_token_prefill_chunk() -> None:
    kv_len, args = 513, (32, 8, 128, 2.0)
    decode = costs.attention_decode_cost(1, kv_len, *args)
    chunk = costs.attention_prefill_cost(1, kv_len - 1, *args)
    assert decode.flops == chunk.flops == 4 * 128 * 32 * kv_len
    assert decode.num_bytes == chunk.num_bytes == 2 * kv_len * 8 * 128 * 2 + 2 * 32 * 128 * 2


def test_decode_attention_is_memory_bound_with_gqa() -> None:
    cost = costs.attention_decode_cost(64, 64 * 2048, 32, 8, 128, 2.0)
    assert cost.flops / cost.num_bytes == pytest.approx(32 / 8, rel=0.01)  # h / g FLOP per byte


def test_elementwise_ops() -> None:
    assert costs.add_rmsnorm_cost(10, 4096).num_bytes == 10 * 4096 * 4 * 2
    assert costs.rope_cost(10, 32, 8, 128).num_bytes == 10 * 40 * 128 * 2 * 2
    assert costs.kv_store_cost(10, 8, 128, 1.0).num_bytes == 10 * 2 * 8 * 128 * (2 + 1)
    assert costs.mlp_activation_cost(10, 100, gated=True).num_bytes == 10 * 100 * 3 * 2
    assert costs.mlp_activation_cost(10, 100, gated=False).num_bytes == 10 * 100 * 2 * 2
    assert costs.embedding_cost(10, 4096, tp=4) == costs.OpCost(0.0, 10 * 4096 * 2 * 1.25)
