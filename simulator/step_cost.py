"""The one cost entry point the engine calls: a step's batch shape -> its time, FLOPs and bytes.

Units: seconds, FLOPs, bytes. Built once per replica (``CostModel.build``), then ``step(shape)`` runs
per simulated step in O(1) float arithmetic on precomputed coefficients (no allocation but the result).

Step time on the replica (every GPU of the TP group does the same work in parallel)::

    time = num_layers x sum over layer ops of op_time(op)          (each op its own roofline + overhead)
         + embedding + final norm + LM head                        (once per step)
         + (2 num_layers + 1) x all_reduce(T x hidden x 2 bytes)   (tp > 1; +1: vocab-parallel embedding)
         + all_gather(logit tokens x vocab x 2 bytes)              (tp > 1; vocab-parallel logits)

op_time = max(flops / (peak x compute_eff), bytes / (hbm_bw x memory_eff)) + kernel_overhead
(``simulator.hardware.roofline``); the layer ops and their formulas are in ``simulator.model.costs``.
Communication is not overlapped with compute (vLLM's TP all-reduces sit on the critical path).

Precision: GEMMs compute in the weights' dtype when the GPU has it natively, else in bf16 (weight-only
quantization: bytes follow the weights, FLOPs run at the bf16 peak). Attention computes in bf16 with KV
bytes from ``precision.kv_cache``. Activations are 2 bytes. The embedding and LM head stay in bf16
(serving quantization recipes leave them unquantized, e.g. vLLM's fp8 and ModelOpt exclude ``lm_head``).

Calibrated (``build(..., calibration=table)``): ops of the classes the table covers are priced by
``CalibratedRoofline`` (measured efficiency by op class, bound and size); FLOPs, bytes and comm are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from simulator.config import LayoutConfig, PrecisionConfig
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile
from simulator.hardware.roofline import CalibratedRoofline, Roofline
from simulator.model import costs
from simulator.model.spec import ModelSpec
from simulator.parallel.comm import allgather_coefficients, allreduce_coefficients
from simulator.parallel.layout import heads_per_gpu, kv_heads_per_gpu, validate_layout
from simulator.precision import bytes_per_element

EMBEDDING_DTYPE = "bf16"
"""Storage format of the embedding table and the LM head, whatever ``precision.weights`` is."""

ATTENTION_COMPUTE_DTYPE = "bf16"


class BatchShape(NamedTuple):
    """Aggregated token counts of one step (all the cost model needs).

    A NamedTuple rather than a frozen dataclass: the engine builds one per simulated step, and a
    tuple is built ~5x faster.
    """

    num_prefill_tokens: int = 0  # prompt tokens computed this step, all chunks together
    num_prefill_seqs: int = 0  # sequences with a prefill chunk in this step
    prefill_attn_pairs: float = 0.0  # sum over chunks of c*p + c*(c+1)/2 (query-key pairs, causal)
    prefill_kv_tokens: int = 0  # sum over chunks of p + c (KV tokens each chunk reads)
    num_decode_tokens: int = 0  # decoding sequences (one new token each)
    decode_kv_tokens: int = 0  # sum over decoding sequences of their KV length
    num_logit_tokens: int = 0  # tokens that produce logits (decodes + prefills finishing their prompt)


class StepCost(NamedTuple):
    """What one step costs on a replica (a NamedTuple, built once per simulated step)."""

    time_s: float  # step wall time on the replica: ops + overheads + TP communication (no scheduler CPU time)
    compute_s: float  # the operator part
    comm_s: float  # TP all-reduces (not overlapped with compute)
    flops: float  # FLOPs of the step, whole replica (all TP GPUs)
    num_bytes: float  # HBM bytes moved, whole replica


_TOKEN_OPS_CACHE_SIZE = 1 << 16
ZERO_COST = StepCost(0.0, 0.0, 0.0, 0.0, 0.0)

# A token-linear op on one GPU: flops = a x T, bytes = b0 + b x T (T: tokens through the op).
_TokenOp = tuple[float, float, float]


def compute_dtype_for(hardware: HardwareProfile, weights_dtype: str) -> str:
    """The GEMMs' compute dtype: the weights' dtype when ``hardware`` has it natively, else bf16."""
    return weights_dtype if hardware.is_native(weights_dtype) else "bf16"


def _gemm_op(n: float, k: float, weight_bytes: float) -> _TokenOp:
    """A GEMM k -> n as a token-linear op: flops 2 n k per token; bytes n k w + (k + n) x 2 per token."""
    return (2.0 * n * k, n * k * weight_bytes, (n + k) * costs.ACTIVATION_BYTES)


def _elementwise_op(per_token: costs.OpCost) -> _TokenOp:
    return (per_token.flops, 0.0, per_token.num_bytes)


def _layer_token_ops(model: ModelSpec, tp: int, weight_bytes: float, kv_bytes: float) -> tuple[_TokenOp, ...]:
    """Every op of one layer whose cost is linear in the step's token count (all but attention)."""
    hidden, d = model.hidden_size, model.head_dim
    h, g = heads_per_gpu(model, tp), kv_heads_per_gpu(model, tp)
    inter = model.intermediate_size / tp
    up_width = 2.0 * inter if model.mlp_gated else inter
    # Weight-only quantization (compute dtype != weights dtype) would add a dequantization term here;
    # fused kernels (Marlin, Machete) hide it at small batch, so none is charged yet.
    return (
        _elementwise_op(costs.add_rmsnorm_cost(1, hidden)),
        _gemm_op((h + 2 * g) * d, hidden, weight_bytes),
        _elementwise_op(costs.rope_cost(1, h, g, d)),
        _elementwise_op(costs.kv_store_cost(1, g, d, kv_bytes)),
        _gemm_op(hidden, h * d, weight_bytes),
        _elementwise_op(costs.add_rmsnorm_cost(1, hidden)),
        _gemm_op(up_width, hidden, weight_bytes),
        _elementwise_op(costs.mlp_activation_cost(1, inter, model.mlp_gated)),
        _gemm_op(hidden, inter, weight_bytes),
    )


@dataclass(frozen=True, slots=True)
class _CalibratedOps:
    """What a calibrated CostModel prices ops with: raw per-GPU FLOPs and bytes, and the table."""

    gemm: CalibratedRoofline  # GEMMs and element-wise ops (fallback: the compute dtype's roofline)
    attn: CalibratedRoofline  # attention (fallback: the bf16 roofline)
    compute_dtype: str
    token_ops: tuple[tuple[str, float, float, float], ...]  # (op class, flops/token, bytes, bytes/token)
    step_elementwise_bytes_per_token: tuple[float, float]  # embedding, final norm
    lm_head: _TokenOp

    def token_ops_s(self, num_tokens: int) -> float:
        """One layer's token-linear ops for ``num_tokens`` tokens, seconds."""
        total = 0.0
        for op_class, a, b0, b in self.token_ops:
            dtype = self.compute_dtype if op_class == "gemm" else ATTENTION_COMPUTE_DTYPE
            total += self.gemm.time_s(op_class, dtype, a * num_tokens, b0 + b * num_tokens)
        return total


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-replica cost model: built once, then ``.step(shape)`` per simulated step.

    All coefficients are per GPU; ``step`` multiplies FLOPs and bytes by ``tp`` for the replica.
    Token-linear ops are kept in seconds: (compute s/token, memory s fixed, memory s/token).
    """

    compute_dtype: str  # the dtype the GEMMs run in
    tp: int
    num_layers: int
    kernel_overhead_s: float
    _token_ops_s: tuple[_TokenOp, ...]  # one layer's token-linear ops, in seconds
    _layer_flops_per_token: float
    _layer_bytes_fixed: float
    _layer_bytes_per_token: float
    _attn_flops_s: float  # seconds per attention FLOP (bf16 rate)
    _bytes_s: float  # seconds per HBM byte
    _attn_flops_per_pair: float  # prefill: 4 d h; decode: the same per KV token
    _attn_q_o_bytes_per_token: float  # 2 h d x 2
    _attn_kv_bytes_per_token: float  # 2 g d x kv bytes
    _step_bytes_per_token: float  # embedding lookup + final norm
    _step_flops_per_token: float
    _lm_head: _TokenOp  # flops/token, bytes fixed, bytes/token (on logit tokens)
    _gemm_flops_s: float  # seconds per GEMM FLOP
    _allreduce_fixed_s: float  # (2 L + 1) all-reduces: fixed part
    _allreduce_s_per_token: float  # and per token of T x hidden x 2 bytes
    _gather_fixed_s: float
    _gather_s_per_logit: float
    # Memo of _token_ops_time_s by token count: exact (a pure function of an int), bounded in size.
    _token_ops_cache: dict[int, float] = field(default_factory=dict, compare=False, repr=False)
    calibration_source: str | None = None  # the calibration table's source, None when spec-only
    _calibrated: _CalibratedOps | None = field(default=None, compare=False, repr=False)
    _calibrated_cache: dict[int, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def calibrated(self) -> bool:
        """Whether op times come from a calibration table rather than the profile's constant factors."""
        return self._calibrated is not None

    @classmethod
    def build(
        cls,
        model: ModelSpec,
        hardware: HardwareProfile,
        precision: PrecisionConfig,
        layout: LayoutConfig,
        calibration: CalibrationTable | None = None,
    ) -> CostModel:
        """Precompute a replica's coefficients (validates the layout; ConfigError when it is invalid)."""
        validate_layout(model, hardware, layout)
        tp = layout.tp
        compute_dtype = compute_dtype_for(hardware, precision.weights)
        gemm_roof = Roofline.of(hardware, compute_dtype)
        attn_roof = Roofline.of(hardware, ATTENTION_COMPUTE_DTYPE)
        kv_bytes = bytes_per_element(precision.kv_cache)
        token_ops = _layer_token_ops(model, tp, bytes_per_element(precision.weights), kv_bytes)
        f_s, b_s = 1.0 / gemm_roof.flops_per_s, 1.0 / gemm_roof.bytes_per_s
        hidden, d = model.hidden_size, model.head_dim
        h, g = heads_per_gpu(model, tp), kv_heads_per_gpu(model, tp)
        emb = costs.embedding_cost(1, hidden, tp)
        norm = costs.elementwise_cost(1, hidden, 1.0, 1.0)
        ar = allreduce_coefficients(hardware, tp)
        num_allreduces = 2 * model.num_layers + 1
        gather = allgather_coefficients(hardware, tp)
        lm_head = _gemm_op(model.vocab_size / tp, hidden, bytes_per_element(EMBEDDING_DTYPE))
        calibrated = None
        if calibration is not None:
            calibrated = _CalibratedOps(
                gemm=CalibratedRoofline(calibration, gemm_roof),
                attn=CalibratedRoofline(calibration, attn_roof),
                compute_dtype=compute_dtype,
                token_ops=tuple(("gemm" if b0 > 0 else "elementwise", a, b0, b) for a, b0, b in token_ops),
                step_elementwise_bytes_per_token=(emb.num_bytes, norm.num_bytes),
                lm_head=lm_head,
            )
        return cls(
            compute_dtype=compute_dtype,
            tp=tp,
            num_layers=model.num_layers,
            kernel_overhead_s=hardware.kernel_overhead_s,
            _token_ops_s=tuple((a * f_s, b0 * b_s, b * b_s) for a, b0, b in token_ops),
            _layer_flops_per_token=sum(op[0] for op in token_ops),
            _layer_bytes_fixed=sum(op[1] for op in token_ops),
            _layer_bytes_per_token=sum(op[2] for op in token_ops),
            _attn_flops_s=1.0 / attn_roof.flops_per_s,
            _bytes_s=b_s,
            _attn_flops_per_pair=4.0 * d * h,
            _attn_q_o_bytes_per_token=2.0 * h * d * costs.ACTIVATION_BYTES,
            _attn_kv_bytes_per_token=2.0 * g * d * kv_bytes,
            _step_bytes_per_token=emb.num_bytes + norm.num_bytes,
            _step_flops_per_token=emb.flops + norm.flops,
            _lm_head=lm_head,
            _gemm_flops_s=f_s,
            _allreduce_fixed_s=num_allreduces * ar.fixed_s,
            _allreduce_s_per_token=num_allreduces * ar.s_per_byte * hidden * costs.ACTIVATION_BYTES,
            _gather_fixed_s=gather.fixed_s,
            _gather_s_per_logit=gather.s_per_byte * model.vocab_size * costs.ACTIVATION_BYTES,
            calibration_source=None if calibration is None else calibration.source,
            _calibrated=calibrated,
        )

    def step(self, shape: BatchShape) -> StepCost:
        """Time, FLOPs and bytes of one step of ``shape`` on this replica (an empty shape costs 0)."""
        num_tokens = shape.num_prefill_tokens + shape.num_decode_tokens
        if num_tokens <= 0:
            return ZERO_COST
        ovh = self.kernel_overhead_s
        layer_s = self._token_ops_cache.get(num_tokens)
        if layer_s is None:
            layer_s = self._token_ops_time_s(num_tokens)
            if len(self._token_ops_cache) < _TOKEN_OPS_CACHE_SIZE:
                self._token_ops_cache[num_tokens] = layer_s
        flops = self._layer_flops_per_token * num_tokens
        nbytes = self._layer_bytes_fixed + self._layer_bytes_per_token * num_tokens
        # Prefill and decode attention are separate kernels, each at its own roofline.
        for new_tokens, pairs, kv_tokens in (
            (shape.num_prefill_tokens, shape.prefill_attn_pairs, shape.prefill_kv_tokens),
            (shape.num_decode_tokens, shape.decode_kv_tokens, shape.decode_kv_tokens),
        ):
            if new_tokens > 0:
                f = self._attn_flops_per_pair * pairs
                b = self._attn_q_o_bytes_per_token * new_tokens + self._attn_kv_bytes_per_token * kv_tokens
                c, m = f * self._attn_flops_s, b * self._bytes_s
                layer_s += (c if c > m else m) + ovh
                flops += f
                nbytes += b
        compute_s = layer_s * self.num_layers + 2.0 * ovh  # + embedding and final norm kernels
        flops *= self.num_layers
        nbytes *= self.num_layers
        step_bytes = self._step_bytes_per_token * num_tokens
        compute_s += step_bytes * self._bytes_s
        flops += self._step_flops_per_token * num_tokens
        nbytes += step_bytes
        comm_s = 0.0
        logits = shape.num_logit_tokens
        if logits > 0:
            a, b0, b = self._lm_head
            f, by = a * logits, b0 + b * logits
            c, m = f * self._gemm_flops_s, by * self._bytes_s
            compute_s += (c if c > m else m) + ovh
            flops += f
            nbytes += by
            if self.tp > 1:
                comm_s += self._gather_fixed_s + self._gather_s_per_logit * logits
        if self.tp > 1:
            comm_s += self._allreduce_fixed_s + self._allreduce_s_per_token * num_tokens
        if self._calibrated is not None:
            compute_s = self._calibrated_compute_s(self._calibrated, shape, num_tokens)
        return StepCost(compute_s + comm_s, compute_s, comm_s, flops * self.tp, nbytes * self.tp)

    def _token_ops_time_s(self, num_tokens: int) -> float:
        """One layer's token-linear ops (projections, MLP, norms) for ``num_tokens`` tokens, seconds."""
        ovh = self.kernel_overhead_s
        layer_s = 0.0
        for compute_s_per_token, mem_fixed_s, mem_s_per_token in self._token_ops_s:
            c = compute_s_per_token * num_tokens
            m = mem_fixed_s + mem_s_per_token * num_tokens
            layer_s += (c if c > m else m) + ovh
        return layer_s

    def _calibrated_compute_s(self, cal: _CalibratedOps, shape: BatchShape, num_tokens: int) -> float:
        """The operator part of a step priced from the calibration table (same FLOPs and bytes)."""
        layer_s = self._calibrated_cache.get(num_tokens)
        if layer_s is None:
            layer_s = cal.token_ops_s(num_tokens)
            if len(self._calibrated_cache) < _TOKEN_OPS_CACHE_SIZE:
                self._calibrated_cache[num_tokens] = layer_s
        dtype = ATTENTION_COMPUTE_DTYPE
        if shape.num_prefill_tokens > 0:
            f = self._attn_flops_per_pair * shape.prefill_attn_pairs
            b = (
                self._attn_q_o_bytes_per_token * shape.num_prefill_tokens
                + self._attn_kv_bytes_per_token * shape.prefill_kv_tokens
            )
            layer_s += cal.attn.time_s("attention_prefill", dtype, f, b)
        if shape.num_decode_tokens > 0:
            f = self._attn_flops_per_pair * shape.decode_kv_tokens
            b = (
                self._attn_q_o_bytes_per_token * shape.num_decode_tokens
                + self._attn_kv_bytes_per_token * shape.decode_kv_tokens
            )
            layer_s += cal.attn.time_s("attention_decode", dtype, f, b)
        total_s = layer_s * self.num_layers
        for per_token in cal.step_elementwise_bytes_per_token:
            b = per_token * num_tokens
            total_s += cal.gemm.time_s("elementwise", dtype, 0.0, b)
        if shape.num_logit_tokens > 0:
            a, b0, b = cal.lm_head
            logits = shape.num_logit_tokens
            total_s += cal.gemm.time_s("gemm", EMBEDDING_DTYPE, a * logits, b0 + b * logits)
        return total_s

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
