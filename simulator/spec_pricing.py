"""The spec-only step formulas that compiled code shares with ``CostModel`` (L2): plain float arithmetic.

``CostModel._forward`` prices a step, spec-only, as the layers' memoised work plus three terms, each
one function here: prefill attention and decode attention (``attention_terms``), and the embedding,
final norm, LM head and logit all-gather (``forward_tail_terms``). The engine's compiled code
(``simulator.engine.decode_kernel`` for decode runs, ``simulator.engine.compiled_kernel`` for whole
simulations) runs the same functions under numba and composes them in the same order, so its times are
float-for-float ``CostModel.step``'s (IEEE, no fast-math: ``tests/test_fast_mode.py`` and
``tests/test_compiled_engine.py`` compare records). Keep these functions free of calls to one another:
numba compiles each on its own.

Decode runs repeat one decode-only step whose KV grows by ``n`` tokens a step: everything in its price
but decode attention is the same every step (``CostModel.decode_run_terms``).
"""

from __future__ import annotations

from typing import NamedTuple


def attention_terms(
    pairs: float,
    num_tokens: int,
    kv_tokens: int,
    scale: float,
    flops_per_pair: float,
    q_o_bytes_per_token: float,
    kv_bytes_per_kv_token: float,
    flops_s: float,
    bytes_s: float,
    kernel_overhead_s: float,
    num_layers: int,
) -> tuple[float, float, float]:
    """Spec-only attention of all layers, x ``scale``: (seconds, FLOPs, bytes) per GPU.

    ``pairs`` query-key pairs, ``num_tokens`` new tokens, ``kv_tokens`` KV tokens read. Decode attention
    reads as many pairs as KV tokens (one query per sequence): ``attention_terms(kv, n, kv, ...)``."""
    f = flops_per_pair * pairs * scale
    b = (q_o_bytes_per_token * num_tokens + kv_bytes_per_kv_token * kv_tokens) * scale
    c, m = f * flops_s, b * bytes_s
    return ((c if c > m else m) + kernel_overhead_s) * num_layers, f * num_layers, b * num_layers


def forward_tail_terms(
    compute_s: float,
    comm_s: float,
    flops: float,
    nbytes: float,
    num_tokens: int,
    logits: float,
    emb_norm_bytes_per_token: float,
    bytes_s: float,
    kernel_overhead_s: float,
    lm_flops_per_logit: float,
    lm_bytes_fixed: float,
    lm_bytes_per_logit: float,
    lm_flops_s: float,
    logit_gather: bool,
    gather_fixed_s: float,
    gather_s_per_logit: float,
) -> tuple[float, float, float, float]:
    """Add the embedding lookup and final norm of ``num_tokens`` tokens, and the LM head (and, with a
    vocab-parallel head, the logits' all-gather) of ``logits`` logit tokens, to a pass's running
    (compute s, comm s, FLOPs, bytes), spec-only."""
    compute_s += emb_norm_bytes_per_token * num_tokens * bytes_s + 2.0 * kernel_overhead_s
    nbytes += emb_norm_bytes_per_token * num_tokens
    if logits > 0:
        f, by = lm_flops_per_logit * logits, lm_bytes_fixed + lm_bytes_per_logit * logits
        c, m = f * lm_flops_s, by * bytes_s
        compute_s += (c if c > m else m) + kernel_overhead_s
        flops += f
        nbytes += by
        if logit_gather:
            comm_s += gather_fixed_s + gather_s_per_logit * logits
    return compute_s, comm_s, flops, nbytes


class SpecTerms(NamedTuple):
    """A cost model's coefficients for ``attention_terms`` and ``forward_tail_terms``
    (``CostModel.spec_terms``), in the order ``simulator.engine.compiled_kernel`` reads them."""

    prefill_flops_per_pair: float
    prefill_q_o_bytes_per_token: float
    prefill_kv_bytes_per_kv_token: float
    decode_flops_per_pair: float
    decode_q_o_bytes_per_token: float
    decode_kv_bytes_per_kv_token: float
    attention_flops_s: float  # seconds per bf16 FLOP
    attention_bytes_s: float  # seconds per HBM byte
    kernel_overhead_s: float
    num_layers: int
    emb_norm_bytes_per_token: float
    bytes_s: float
    lm_flops_per_logit: float
    lm_bytes_fixed: float
    lm_bytes_per_logit: float
    lm_flops_s: float
    logit_gather: bool
    gather_fixed_s: float
    gather_s_per_logit: float
    tp: int  # per-GPU FLOPs and bytes x tp: the replica's


class DecodeRunTerms(NamedTuple):
    """A decode step's cost apart from its KV length (``CostModel.decode_run_terms``)."""

    fixed_compute_s: float  # CostModel._forward_fixed of the step: everything but decode attention
    fixed_comm_s: float
    fixed_flops: float  # per GPU
    fixed_bytes: float
    flops_per_pair: float  # decode attention coefficients (attention_terms)
    q_o_bytes_per_token: float
    kv_bytes_per_kv_token: float
    attn_flops_s: float
    bytes_s: float
    kernel_overhead_s: float
    num_layers: int
    tp: int  # per-GPU FLOPs and bytes x tp: the replica's
