"""The attention kernels of one forward pass on one GPU: prefill (causal) and decode (reading the KV cache).

Units: seconds, FLOPs and bytes per GPU, all layers together. ``AttentionKernels.prefill_terms`` and
``decode_terms`` take a step's attention sums (``simulator.step_cost.BatchShape``) times ``scale`` (the
share of the step this GPU or micro-batch works on) and return (seconds, flops, bytes)::

    prefill: flops = flops_per_pair x query-key pairs     bytes = q,o x new tokens + KV x tokens read
    decode:  flops = flops_per_pair x KV tokens read       bytes = q,o x sequences + KV x tokens read
    time     = L x (max(flops / attention peak, bytes / HBM bandwidth) + kernel overhead)   (spec-only)
               L x table time                                                            (calibrated)

Coefficients per GPU (``simulator.model.layer_ops.attention_coefficients``): GQA heads split by tp, MLA's
latent read whole on every GPU. With attention data-parallelism each GPU runs all heads (tp = 1) on its
own sequences: the caller builds the kernels with tp = 1 and passes its rank's share as ``scale``.
Spec-only, the formula is ``simulator.spec_pricing.attention_terms``, shared with compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import LayoutConfig
from simulator.model.layer_ops import AttentionCoefficients, attention_coefficients
from simulator.model.spec import ModelSpec
from simulator.spec_pricing import SpecTerms, attention_terms
from simulator.step_layers import Pricer


@dataclass(frozen=True, slots=True)
class AttentionKernels:
    """Prefill and decode attention of all layers on one GPU (see the module docstring)."""

    prefill: AttentionCoefficients
    decode: AttentionCoefficients
    num_layers: int
    kernel_overhead_s: float
    pricer: Pricer
    flops_s: float  # seconds per bf16 FLOP (spec-only)
    bytes_s: float  # seconds per HBM byte (spec-only)

    @classmethod
    def build(
        cls, model: ModelSpec, tp: int, kv_bytes: float, pricer: Pricer, kernel_overhead_s: float
    ) -> AttentionKernels:
        """Coefficients for ``tp`` GPUs sharing the heads and ``kv_bytes`` per cached element."""
        return cls(
            prefill=attention_coefficients(model, tp, kv_bytes, decode=False),
            decode=attention_coefficients(model, tp, kv_bytes, decode=True),
            num_layers=model.num_layers,
            kernel_overhead_s=kernel_overhead_s,
            pricer=pricer,
            flops_s=1.0 / pricer.other.flops_per_s,
            bytes_s=1.0 / pricer.other.bytes_per_s,
        )

    def prefill_terms(
        self, num_tokens: int, pairs: float, kv_tokens: int, scale: float
    ) -> tuple[float, float, float]:
        """(seconds, flops, bytes) of prefill attention x ``scale``: ``num_tokens`` new tokens, ``pairs``
        query-key pairs, ``kv_tokens`` KV tokens read."""
        return self._terms("attention_prefill", self.prefill, pairs, num_tokens, kv_tokens, scale)

    def decode_terms(self, num_seqs: int, kv_tokens: int, scale: float) -> tuple[float, float, float]:
        """(seconds, flops, bytes) of decode attention x ``scale``: ``num_seqs`` sequences reading
        ``kv_tokens`` KV tokens (one query each: as many pairs as KV tokens)."""
        return self._terms("attention_decode", self.decode, kv_tokens, num_seqs, kv_tokens, scale)

    def _terms(
        self,
        op_class: str,
        coef: AttentionCoefficients,
        pairs: float,
        num_tokens: int,
        kv_tokens: int,
        scale: float,
    ) -> tuple[float, float, float]:
        """Spec-only, ``attention_terms``, the formula the engine's compiled code also runs
        (``simulator.spec_pricing``); calibrated, the table's time for the kernel's FLOPs and bytes."""
        n = self.num_layers
        if self.pricer.table is None:
            return attention_terms(
                pairs,
                num_tokens,
                kv_tokens,
                scale,
                coef.flops_per_pair,
                coef.q_o_bytes_per_token,
                coef.kv_bytes_per_kv_token,
                self.flops_s,
                self.bytes_s,
                self.kernel_overhead_s,
                n,
            )
        f = coef.flops_per_pair * pairs * scale
        b = (coef.q_o_bytes_per_token * num_tokens + coef.kv_bytes_per_kv_token * kv_tokens) * scale
        return self.pricer.attention_s(op_class, f, b) * n, f * n, b * n


def spec_terms(
    attention: AttentionKernels,
    emb_norm_bytes_per_token: float,
    lm_head: tuple[float, float, float],
    gather: tuple[float, float],
    layout: LayoutConfig,
) -> SpecTerms:
    """A cost model's coefficients for ``simulator.spec_pricing``'s formulas (``CostModel.spec_terms``); its
    LM-head and logit all-gather ones price calibrated steps too."""
    pre, dec = attention.prefill, attention.decode
    tp = 1 if layout.attention_dp else layout.tp
    return SpecTerms(
        pre.flops_per_pair,
        pre.q_o_bytes_per_token,
        pre.kv_bytes_per_kv_token,
        dec.flops_per_pair,
        dec.q_o_bytes_per_token,
        dec.kv_bytes_per_kv_token,
        attention.flops_s,
        attention.bytes_s,
        attention.kernel_overhead_s,
        attention.num_layers,
        emb_norm_bytes_per_token,
        1.0 / attention.pricer.other.bytes_per_s,
        *lm_head,
        1.0 / attention.pricer.other.flops_per_s,
        tp > 1,
        *gather,
        layout.tp,
    )
