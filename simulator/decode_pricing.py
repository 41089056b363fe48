"""What a decode step costs as a function of its KV length, for pricing runs of such steps (L2).

A decode run (``simulator.engine.decode_run``) repeats one decode-only step of ``n`` sequences whose KV
grows by ``n`` tokens a step. Everything in its price but decode attention is the same every step
(``CostModel.decode_run_terms``); decode attention is ``decode_attention_terms``, the one function
``CostModel._forward`` also calls per step, and which ``simulator.engine.decode_kernel`` compiles with
numba so the engine can loop over a run's steps in compiled code with the same arithmetic (IEEE, no
fast-math: ``tests/test_fast_mode.py`` compares the two modes' records).
"""

from __future__ import annotations

from typing import NamedTuple


def decode_attention_terms(
    kv_tokens: int,
    num_seqs: int,
    scale: float,
    flops_per_pair: float,
    q_o_bytes_per_token: float,
    kv_bytes_per_kv_token: float,
    attn_flops_s: float,
    bytes_s: float,
    kernel_overhead_s: float,
    num_layers: int,
) -> tuple[float, float, float]:
    """Spec-only decode attention of all layers: (seconds, FLOPs, bytes) per GPU.

    The single source of this formula: ``CostModel._forward`` calls it per step, and
    ``simulator.engine.decode_kernel.plan_kernel`` runs the same function compiled."""
    f = flops_per_pair * kv_tokens * scale
    b = (q_o_bytes_per_token * num_seqs + kv_bytes_per_kv_token * kv_tokens) * scale
    c, m = f * attn_flops_s, b * bytes_s
    return ((c if c > m else m) + kernel_overhead_s) * num_layers, f * num_layers, b * num_layers


class DecodeRunTerms(NamedTuple):
    """A decode step's cost apart from its KV length (``CostModel.decode_run_terms``)."""

    fixed_compute_s: float  # CostModel._forward_fixed of the step: everything but decode attention
    fixed_comm_s: float
    fixed_flops: float  # per GPU
    fixed_bytes: float
    flops_per_pair: float  # decode attention coefficients (decode_attention_terms)
    q_o_bytes_per_token: float
    kv_bytes_per_kv_token: float
    attn_flops_s: float
    bytes_s: float
    kernel_overhead_s: float
    num_layers: int
    tp: int  # per-GPU FLOPs and bytes x tp: the replica's
