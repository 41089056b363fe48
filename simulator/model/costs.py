"""FLOPs and HBM bytes of each operator of a dense transformer layer, per GPU, as pure functions.

Units: FLOPs and bytes. Every function takes plain numbers (token counts, widths already divided by
the tensor-parallel degree, bytes per element) so the step cost model, the what-if API and tests share
one set of formulas. Sources: the GEMM and attention counts follow Kaplan et al. 2020 (arXiv:2001.08361,
Table 1: 2 FLOPs per multiply-add) and the FlashAttention papers (Dao et al. 2022, arXiv:2205.14135:
attention reads Q, K, V once and writes O, with no N x N matrix in HBM).

One layer of a Llama-style model on one GPU of a TP group (widths per GPU)::

    x -> [add+RMSNorm] -> [QKV GEMM] -> [RoPE] -> [KV store] -> [attention] -> [O GEMM] -> all-reduce
      -> [add+RMSNorm] -> [gate+up GEMM] -> [SiLU x mul] -> [down GEMM] -> all-reduce
"""

from __future__ import annotations

from typing import NamedTuple

ACTIVATION_BYTES = 2.0
"""Activations are bf16/fp16 (2 bytes) whatever the weights' format."""

ELEMENTWISE_FLOPS_PER_ELEMENT = 4.0
"""A nominal few FLOPs per element for norms and activations; they are memory-bound either way."""


class OpCost(NamedTuple):
    """FLOPs and HBM bytes of one operator on one GPU."""

    flops: float
    num_bytes: float


def gemm_cost(
    m: float, n: float, k: float, weight_bytes: float, act_bytes: float = ACTIVATION_BYTES
) -> OpCost:
    """A GEMM of ``m`` tokens, ``k`` -> ``n`` features, weights read once from HBM.

    flops = 2 m n k; bytes = n k x weight_bytes + (m k + m n) x act_bytes (input read, output written).
    """
    return OpCost(2.0 * m * n * k, n * k * weight_bytes + (m * k + m * n) * act_bytes)


def causal_pairs(num_new_tokens: float, num_cached_tokens: float) -> float:
    """Query-key pairs of a causal prefill chunk of c new tokens after p cached ones: c p + c (c + 1) / 2."""
    c, p = num_new_tokens, num_cached_tokens
    return c * p + c * (c + 1) / 2.0


def attention_prefill_cost_totals(
    num_tokens: float,
    attn_pairs: float,
    kv_tokens: float,
    num_heads: float,
    num_kv_heads: float,
    head_dim: float,
    kv_bytes: float,
) -> OpCost:
    """Prefill attention of several chunks summed: ``num_tokens`` new tokens, ``attn_pairs`` causal pairs,
    ``kv_tokens`` = sum of p + c over the chunks; heads are per GPU.

    flops = 4 d h x pairs (QK^T and PV, 2 FLOPs per multiply-add each);
    bytes = Q and O (2 c h d x 2) + K and V read (2 (p + c) g d x kv_bytes).
    """
    flops = 4.0 * head_dim * num_heads * attn_pairs
    num_bytes = 2.0 * num_tokens * num_heads * head_dim * ACTIVATION_BYTES
    num_bytes += 2.0 * kv_tokens * num_kv_heads * head_dim * kv_bytes
    return OpCost(flops, num_bytes)


def attention_prefill_cost(
    num_new_tokens: float,
    num_cached_tokens: float,
    num_heads: float,
    num_kv_heads: float,
    head_dim: float,
    kv_bytes: float,
) -> OpCost:
    """Prefill attention of one chunk of c new tokens after p cached ones (see the totals form)."""
    return attention_prefill_cost_totals(
        num_new_tokens,
        causal_pairs(num_new_tokens, num_cached_tokens),
        num_new_tokens + num_cached_tokens,
        num_heads,
        num_kv_heads,
        head_dim,
        kv_bytes,
    )


def attention_decode_cost(
    num_seqs: float, kv_tokens: float, num_heads: float, num_kv_heads: float, head_dim: float, kv_bytes: float
) -> OpCost:
    """Decode attention of ``num_seqs`` sequences, one new token each, reading ``kv_tokens`` cached tokens
    in total (sum of their KV lengths L); heads are per GPU.

    flops = 4 d h x L; bytes = K and V (2 L g d x kv_bytes) + q and o of each sequence (2 h d x 2).
    """
    flops = 4.0 * head_dim * num_heads * kv_tokens
    num_bytes = 2.0 * kv_tokens * num_kv_heads * head_dim * kv_bytes
    num_bytes += 2.0 * num_seqs * num_heads * head_dim * ACTIVATION_BYTES
    return OpCost(flops, num_bytes)


def elementwise_cost(
    num_tokens: float,
    width: float,
    num_reads: float,
    num_writes: float,
    elem_bytes: float = ACTIVATION_BYTES,
    flops_per_element: float = ELEMENTWISE_FLOPS_PER_ELEMENT,
) -> OpCost:
    """A memory-bound elementwise op over ``num_tokens`` x ``width`` elements.

    bytes = tokens x width x (reads + writes) x elem_bytes; flops = tokens x width x flops_per_element.
    """
    elements = num_tokens * width
    return OpCost(elements * flops_per_element, elements * (num_reads + num_writes) * elem_bytes)


def add_rmsnorm_cost(num_tokens: float, hidden_size: float) -> OpCost:
    """Residual add fused with RMSNorm (vLLM ``fused_add_rms_norm``): reads x and residual, writes both."""
    return elementwise_cost(num_tokens, hidden_size, 2.0, 2.0)


def rope_cost(num_tokens: float, num_heads: float, num_kv_heads: float, head_dim: float) -> OpCost:
    """Rotary embedding in place on q and k (per-GPU heads): read and write (h + g) d per token."""
    return elementwise_cost(num_tokens, (num_heads + num_kv_heads) * head_dim, 1.0, 1.0)


def kv_store_cost(num_tokens: float, num_kv_heads: float, head_dim: float, kv_bytes: float) -> OpCost:
    """Writing the new tokens' K and V into the paged cache: read 2 g d x 2 bytes, write 2 g d x kv_bytes."""
    elements = num_tokens * 2.0 * num_kv_heads * head_dim
    return OpCost(elements, elements * (ACTIVATION_BYTES + kv_bytes))


def mlp_activation_cost(num_tokens: float, intermediate_per_gpu: float, gated: bool) -> OpCost:
    """SiLU(gate) x up (gated: reads 2 I, writes I) or GELU(up) (reads I, writes I), I per GPU."""
    return elementwise_cost(num_tokens, intermediate_per_gpu, 2.0 if gated else 1.0, 1.0)


def embedding_cost(num_tokens: float, hidden_size: float, tp: int) -> OpCost:
    """Vocab-parallel embedding lookup on one GPU: reads its share of the rows (T H / tp x 2 bytes) and
    writes the full T x H output (zeros for other shards' rows, summed by an all-reduce)."""
    return OpCost(0.0, num_tokens * hidden_size * ACTIVATION_BYTES * (1.0 + 1.0 / tp))
