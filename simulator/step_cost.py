"""The one cost entry point the engine calls: a step's batch shape -> its time, FLOPs and bytes.

Units: seconds, FLOPs, bytes. Built once per replica (``CostModel.build``), then ``step(shape)`` runs
per simulated step: the token-dependent work of all layers is memoised by token count, attention and
the LM head are a few float operations.

One forward pass on one pipeline stage's TP group (every GPU of it does the same work in parallel)::

    time = L x (attention block ops + attention kernel)              (GQA or MLA, simulator.model.layer_ops)
         + dense layers x MLP block + MoE layers x MoE block(T)     (slowest expert-parallel GPU)
         + embedding + final norm + LM head                          (once per pass)
         + (2 L + 1) x all_reduce(T x hidden x 2 bytes)              (tp > 1; +1: vocab-parallel embedding)
           (ep > 1: a MoE layer's all-reduce is replaced by dispatch + combine all-to-alls of T/ep x k tokens)
         + all_gather(logit tokens x vocab x 2 bytes)                (tp > 1; vocab-parallel logits)

op_time = max(flops / (peak x compute_eff), bytes / (hbm_bw x memory_eff)) + kernel_overhead
(``simulator.hardware.roofline``). Communication is not overlapped with compute.

Pipeline parallelism (pp > 1) with micro-batches kept in flight (``simulator.parallel.pipeline``: vLLM's
virtual engines, TensorRT-LLM's in-flight batching): each stage holds L / pp layers; the step's sequences
are m = min(pp, sequences) micro-batches that follow one another through the stages without draining
the pipeline, and one step is one round in which every sequence advances once::

    step   = max(m, pp) x (forward(micro-batch) / pp + p2p(micro-batch tokens x hidden x 2 bytes))
    bubble = 1 - m (slot - p2p) / (max(m, pp) slot)   ((pp - m) / pp idle slots when m < pp, plus sends)

A large decode batch on pp = 2 thus costs about forward(batch / 2) per token instead of forward(batch):
PP buys memory and, once the batch fills the stages, throughput; a single sequence still crosses every
stage in turn (no faster than pp = 1).

Attention data-parallelism (``layout.attention_dp``, MoE only, ep = tp = N): every GPU runs attention,
the dense layers, the shared expert and the LM head whole (tp = 1) on its own sequences; the routed
experts are spread over the N GPUs with all-to-all dispatch and combine (``simulator.step_layers``).
The S sequences are split as evenly as possible, and the slowest rank, with ceil(S / N) of them, sets
the step; it is priced with that share of the step's tokens, attention sums and logits (a rank with a
long prompt is not told apart: the share is of the step's totals). Replica FLOPs and bytes: the slowest
rank's times the ranks with sequences.

Precision: GEMMs compute in the weights' dtype when the GPU has it natively (``peak_flops_per_s`` has a
key); otherwise they run weight-only: bytes follow the weights, FLOPs run at the bf16 peak derated by
``WEIGHT_ONLY_COMPUTE_FRAC`` (in-register dequantization), and ``CostModel.precision_note`` says so.
Attention computes in bf16 with KV bytes from ``precision.kv_cache``. Activations are 2 bytes. The
embedding, LM head and MoE router stay bf16 (serving recipes leave them unquantized).

Calibrated (``build(..., calibration=table)``): ops of the classes the table covers are priced by the
table (measured efficiency by op class, bound and size); FLOPs, bytes and comm are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.config import LayoutConfig, PrecisionConfig
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile
from simulator.hardware.roofline import Roofline
from simulator.model import costs
from simulator.model.spec import ModelSpec
from simulator.parallel import pipeline
from simulator.parallel.comm import allgather_coefficients, p2p_time_s
from simulator.parallel.layout import validate_layout
from simulator.precision import bytes_per_element
from simulator.spec_pricing import DecodeRunTerms, SpecTerms, forward_tail_terms
from simulator.step_attention import AttentionKernels, spec_terms
from simulator.step_layers import LayerWork, Pricer, build_layer_work
from simulator.step_precision import (  # re-exported: the precision constants' historical home
    ATTENTION_COMPUTE_DTYPE as ATTENTION_COMPUTE_DTYPE,
)
from simulator.step_precision import EMBEDDING_DTYPE as EMBEDDING_DTYPE
from simulator.step_precision import WEIGHT_ONLY_COMPUTE_FRAC as WEIGHT_ONLY_COMPUTE_FRAC
from simulator.step_precision import compute_dtype_for as compute_dtype_for
from simulator.step_precision import gemm_roofline, precision_fallback_note
from simulator.step_shape import ZERO_COST
from simulator.step_shape import BatchShape as BatchShape  # re-exported: the engine's and users' import
from simulator.step_shape import StepCost as StepCost


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-replica cost model: built once, then ``.step(shape)`` per simulated step."""

    compute_dtype: str  # the dtype the GEMMs run in
    tp: int
    pp: int
    ep: int
    attention_dp_ranks: int  # GPUs running attention data-parallel (tp with layout.attention_dp, else 1)
    num_layers: int
    kernel_overhead_s: float
    precision_note: str | None  # set when the weights' format falls back to weight-only compute
    _pricer: Pricer
    _layers: LayerWork
    _attention: AttentionKernels
    _step_bytes_per_token: tuple[float, float]  # embedding lookup, final norm
    _p2p_bytes_per_token: float
    _p2p_same_node: bool
    _terms: SpecTerms  # the LM head, logit all-gather and attention coefficients; spec_pricing's formulas
    _hardware: HardwareProfile = field(repr=False)
    calibration_source: str | None = None  # the calibration table's source, None when spec-only

    @property
    def calibrated(self) -> bool:
        """Whether op times come from a calibration table rather than the profile's constant factors."""
        return self._pricer.table is not None

    @classmethod
    def build(
        cls,
        model: ModelSpec,
        hardware: HardwareProfile,
        precision: PrecisionConfig,
        layout: LayoutConfig,
        calibration: CalibrationTable | None = None,
        seed: int = 0,
    ) -> CostModel:
        """Precompute a replica's coefficients (validates the layout; ConfigError when it is invalid).

        ``seed`` seeds the MoE routing sample (stream "experts"); dense models do not use it.
        """
        validate_layout(model, hardware, layout)
        tp = 1 if layout.attention_dp else layout.tp  # what the heads, dense layers and LM head split over
        compute_dtype = compute_dtype_for(hardware, precision.weights)
        gemm_roof = gemm_roofline(hardware, precision.weights)
        pricer = Pricer(gemm_roof, Roofline.of(hardware, ATTENTION_COMPUTE_DTYPE), calibration, compute_dtype)
        kv_bytes = bytes_per_element(precision.kv_cache)
        layers = build_layer_work(
            model, hardware, layout, pricer, bytes_per_element(precision.weights), kv_bytes, seed
        )
        hidden = model.hidden_size
        emb = costs.embedding_cost(1, hidden, tp)
        norm = costs.elementwise_cost(1, hidden, 1.0, 1.0)
        gather = allgather_coefficients(hardware, tp)
        gather_terms = (gather.fixed_s, gather.s_per_byte * model.vocab_size * costs.ACTIVATION_BYTES)
        attention = AttentionKernels.build(model, tp, kv_bytes, pricer, hardware.kernel_overhead_s)
        lm = 2.0 * model.vocab_size / tp * hidden
        lm_head = (
            lm,
            model.vocab_size / tp * hidden * bytes_per_element(EMBEDDING_DTYPE),
            (model.vocab_size / tp + hidden) * costs.ACTIVATION_BYTES,
        )
        return cls(
            compute_dtype=compute_dtype,
            tp=layout.tp,
            pp=layout.pp,
            ep=layout.ep,
            attention_dp_ranks=layout.tp if layout.attention_dp else 1,
            num_layers=model.num_layers,
            kernel_overhead_s=hardware.kernel_overhead_s,
            precision_note=precision_fallback_note(hardware, precision.weights),
            _pricer=pricer,
            _layers=layers,
            _attention=attention,
            _step_bytes_per_token=(emb.num_bytes, norm.num_bytes),
            _p2p_bytes_per_token=hidden * costs.ACTIVATION_BYTES,
            _p2p_same_node=layout.gpus_per_replica <= hardware.gpus_per_node,
            _terms=spec_terms(attention, emb.num_bytes + norm.num_bytes, lm_head, gather_terms, layout),
            _hardware=hardware,
            calibration_source=None if calibration is None else calibration.source,
        )

    def step(self, shape: BatchShape) -> StepCost:
        """Time, FLOPs and bytes of one step of ``shape`` on this replica (an empty shape costs 0)."""
        num_tokens = shape.num_prefill_tokens + shape.num_decode_tokens
        if num_tokens <= 0:
            return ZERO_COST
        if self.pp > 1:
            return self._pipelined(shape, num_tokens)[0]
        ranks = self.attention_dp_ranks
        if ranks == 1:
            compute_s, comm_s, flops, nbytes = self._forward(shape, num_tokens, 1.0)
            return StepCost(compute_s + comm_s, compute_s, comm_s, flops * self.tp, nbytes * self.tp)
        num_seqs = max(1, shape.num_prefill_seqs + shape.num_decode_tokens)
        per_rank = -(-num_seqs // ranks)  # the slowest rank's sequences
        rank_tokens = max(1, -(-num_tokens * per_rank // num_seqs))
        compute_s, comm_s, flops, nbytes = self._forward(shape, rank_tokens, per_rank / num_seqs, num_tokens)
        active = min(ranks, num_seqs)
        return StepCost(compute_s + comm_s, compute_s, comm_s, flops * active, nbytes * active)

    def _pipelined(self, shape: BatchShape, num_tokens: int) -> tuple[StepCost, float]:
        """One round of m = min(pp, sequences) micro-batches kept in flight (``simulator.parallel.pipeline``)
        and its bubble fraction."""
        pp = self.pp
        m = pipeline.num_micro_batches(pp, shape.num_prefill_seqs + shape.num_decode_tokens)
        mb_tokens = -(-num_tokens // m)
        compute_s, comm_s, flops, nbytes = self._forward(shape, mb_tokens, 1.0 / m)
        p2p = p2p_time_s(self._hardware, mb_tokens * self._p2p_bytes_per_token, self._p2p_same_node)
        slots = pipeline.round_slots(pp, m)
        slot_s = (compute_s + comm_s) / pp + p2p
        bubble = pipeline.bubble_frac(pp, m, slot_s, p2p)
        compute_s = slots * compute_s / pp
        comm_s = slots * (comm_s / pp + p2p)
        cost = StepCost(compute_s + comm_s, compute_s, comm_s, flops * m * self.tp, nbytes * m * self.tp)
        return cost, bubble

    def pipeline_bubble_frac(self, batch_size: int, kv_len: int = 1024) -> float:
        """Fraction of a decode round of ``batch_size`` sequences the stages do not compute: (pp - m) / pp
        idle slots with m = min(pp, batch_size) micro-batches, plus activation sends (0 without PP)."""
        if self.pp == 1:
            return 0.0
        shape = BatchShape(
            num_decode_tokens=batch_size, decode_kv_tokens=batch_size * kv_len, num_logit_tokens=batch_size
        )
        return self._pipelined(shape, batch_size)[1]

    def _forward(
        self, shape: BatchShape, num_tokens: int, scale: float, total_tokens: int = 0
    ) -> tuple[float, float, float, float]:
        """One pass of ``num_tokens`` tokens (attention sums and logits x ``scale``; ``total_tokens`` routed
        to the experts, 0: the same) through all layers on one GPU: (compute s, comm s, flops, bytes).

        Decode attention, the only term that changes from one step of a decode run to the next, is
        added last, so a run of such steps can be priced from ``_forward_fixed`` plus
        ``spec_pricing.attention_terms`` alone (``decode_run_terms``), float for float."""
        compute_s, comm_s, flops, nbytes = self._forward_fixed(shape, num_tokens, scale, total_tokens)
        if shape.num_decode_tokens > 0:
            t, f, b = self._attention.decode_terms(shape.num_decode_tokens, shape.decode_kv_tokens, scale)
            compute_s, flops, nbytes = compute_s + t, flops + f, nbytes + b
        return compute_s, comm_s, flops, nbytes

    def _forward_fixed(
        self, shape: BatchShape, num_tokens: int, scale: float, total_tokens: int = 0
    ) -> tuple[float, float, float, float]:
        """``_forward`` without decode attention: layers, prefill attention, embedding, norm, LM head.
        Spec-only, the terms are ``simulator.spec_pricing``'s, which compiled code composes the same way."""
        compute_s, comm_s, flops, nbytes = self._layers.at(num_tokens, total_tokens)
        if shape.num_prefill_tokens > 0:
            t, f, b = self._attention.prefill_terms(
                shape.num_prefill_tokens, shape.prefill_attn_pairs, shape.prefill_kv_tokens, scale
            )
            compute_s, flops, nbytes = compute_s + t, flops + f, nbytes + b
        logits = shape.num_logit_tokens * scale
        spec = self._terms
        if self._pricer.table is None:
            return forward_tail_terms(
                compute_s,
                comm_s,
                flops,
                nbytes,
                num_tokens,
                logits,
                spec.emb_norm_bytes_per_token,
                spec.bytes_s,
                spec.kernel_overhead_s,
                spec.lm_flops_per_logit,
                spec.lm_bytes_fixed,
                spec.lm_bytes_per_logit,
                spec.lm_flops_s,
                spec.logit_gather,
                spec.gather_fixed_s,
                spec.gather_s_per_logit,
            )
        pricer = self._pricer
        emb_b, norm_b = self._step_bytes_per_token
        compute_s += pricer.op_s("elementwise", 0.0, emb_b * num_tokens)
        compute_s += pricer.op_s("elementwise", 0.0, norm_b * num_tokens)
        nbytes += (emb_b + norm_b) * num_tokens
        if logits > 0:
            f, by = spec.lm_flops_per_logit * logits, spec.lm_bytes_fixed + spec.lm_bytes_per_logit * logits
            compute_s += pricer.lm_head_s(f, by)
            flops += f
            nbytes += by
            if spec.logit_gather:
                comm_s += spec.gather_fixed_s + spec.gather_s_per_logit * logits
        return compute_s, comm_s, flops, nbytes

    def layer_terms(self, num_tokens: int) -> tuple[float, float, float, float]:
        """All layers' token-dependent work at ``num_tokens`` tokens: (compute s, comm s, FLOPs, bytes) per
        GPU, memoised (what a compiled engine looks up before ``SpecTerms``' formulas)."""
        return self._layers.at(num_tokens)

    def spec_terms(self) -> SpecTerms | None:
        """The coefficients of ``simulator.spec_pricing``'s formulas, for compiled code that prices steps
        as ``step`` does; None where ``step`` prices otherwise (calibrated, pp > 1, attention-DP)."""
        if self._pricer.table is not None or self.pp != 1 or self.attention_dp_ranks != 1:
            return None
        return self._terms

    def decode_run_terms(self, num_seqs: int) -> DecodeRunTerms | None:
        """What a decode step of ``num_seqs`` sequences costs apart from its KV length, for pricing a
        run of such steps at once; None where runs are priced step by step (calibrated attention, pp > 1,
        attention-DP).
        """
        if self._pricer.table is not None or self.pp != 1 or self.attention_dp_ranks != 1:
            return None
        shape = BatchShape(0, 0, 0.0, 0, num_seqs, 0, num_seqs)
        compute_s, comm_s, flops, nbytes = self._forward_fixed(shape, num_seqs, 1.0)
        coef = self._attention.decode
        return DecodeRunTerms(
            compute_s,
            comm_s,
            flops,
            nbytes,
            coef.flops_per_pair,
            coef.q_o_bytes_per_token,
            coef.kv_bytes_per_kv_token,
            self._attention.flops_s,
            self._attention.bytes_s,
            self._attention.kernel_overhead_s,
            self._attention.num_layers,
            self.tp,
        )

    def moe_imbalance_frac(self, num_tokens: int) -> float:
        """Expert load imbalance at ``num_tokens`` tokens: max / mean token-expert assignments over the
        expert-parallel GPUs, minus 1 (0 for a dense model or ep = 1)."""
        return self._layers.imbalance_frac(num_tokens)

    def moe_block_time_s(self, num_tokens: int) -> float:
        """Seconds of one MoE block (slowest GPU, with its EP all-to-alls) for ``num_tokens`` tokens (the
        replica's; attention-DP: ceil(num_tokens / ranks) on the slowest rank)."""
        rank_tokens = -(-num_tokens // self.attention_dp_ranks)
        compute_s, comm_s, _, _ = self._layers.moe_block(rank_tokens, num_tokens)
        return compute_s + comm_s

    def moe_unique_experts(self, num_tokens: int) -> float:
        """Experts whose weights the slowest GPU reads per MoE layer at ``num_tokens`` tokens."""
        return self._layers.unique_experts(num_tokens)

    def decode_step_time_s(self, batch_size: int, kv_len: int) -> float:
        """Seconds of one decode step of ``batch_size`` sequences that each read ``kv_len`` KV tokens."""
        shape = BatchShape(
            num_decode_tokens=batch_size, decode_kv_tokens=batch_size * kv_len, num_logit_tokens=batch_size
        )
        return self.step(shape).time_s

    def prefill_time_s(self, prompt_tokens: int) -> float:
        """Seconds to prefill one prompt of ``prompt_tokens`` alone, in one step (no chunking)."""
        shape = BatchShape(
            num_prefill_tokens=prompt_tokens,
            num_prefill_seqs=1,
            prefill_attn_pairs=costs.causal_pairs(prompt_tokens, 0),
            prefill_kv_tokens=prompt_tokens,
            num_logit_tokens=1,
        )
        return self.step(shape).time_s


def pipeline_bubble_frac(pp: int, num_seqs: int) -> float:
    """Idle stage slots of a round with micro-batches in flight: (pp - m) / pp, m = min(pp, num_seqs)
    (activation sends not counted; ``simulator.parallel.pipeline``)."""
    return pipeline.bubble_frac(pp, pipeline.num_micro_batches(pp, num_seqs))
