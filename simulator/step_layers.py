"""The token-dependent work of all layers of one forward pass, memoised by token count (layer L2).

Units: seconds, FLOPs and bytes per GPU. ``build_layer_work`` turns a model, layout and precision into
``LayerWork``; ``LayerWork.at(T)`` prices T tokens through every layer's token-linear ops (attention
block without the kernel, dense MLP blocks), every MoE block at the slowest expert-parallel GPU, and the
layers' TP all-reduces and EP all-to-alls. ``Pricer`` prices one op with the roofline or a calibration
table. See ``simulator.step_cost`` for the whole step and ``simulator.model.layer_ops`` for the ops.

MoE block on one GPU (slowest GPU of the stage; ``simulator.model.moe`` samples the routing)::

    ep = 1:  every GPU holds 1/tp of every expert: reads the hit experts' shards, computes T x k rows
    ep = tp: GPU g holds E/ep whole experts; tokens are reduce-scattered after attention (T/ep per GPU),
             dispatched to their experts' GPUs (all-to-all), computed, combined (all-to-all), gathered

Attention-DP (``layout.attention_dp``, ep = tp = N; DeepSeek's serving layout, as SGLang's
``--enable-dp-attention`` and TensorRT-LLM's ``enable_attention_dp`` run it)::

    GPU r: [attention, dense MLP, norm, router, shared expert: whole weights, its own t_r tokens]
           -> all-to-all dispatch of t_r x k rows -> routed experts E/N of them, hit by all T tokens
           -> all-to-all combine -> next layer           (no all-reduce: nothing is split by heads)

``at(t_r, T)`` prices the slowest rank: its t_r tokens through the token-linear ops and all-to-alls, the
replica's T tokens through the expert routing (the slowest expert GPU). Without attention-DP t_r = T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.config import LayoutConfig
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile
from simulator.hardware.roofline import Roofline
from simulator.model import costs
from simulator.model.layer_ops import (
    TokenOp,
    attention_block_ops,
    dense_block_ops,
    moe_block_token_ops,
    routed_expert_ops,
)
from simulator.model.moe import GroupLoad, RoutingProfile
from simulator.model.spec import ModelSpec
from simulator.parallel.comm import AllReduceTime, LinearTime, allreduce_algorithms, alltoall_coefficients
from simulator.rng import stream

_CACHE_SIZE = 1 << 16
_LM_DTYPE = "bf16"


@dataclass(frozen=True, slots=True)
class Pricer:
    """Prices one op on one GPU: the table's measured efficiency when it covers the op, else the roofline."""

    gemm: Roofline  # GEMMs, in the compute dtype (derated when weight-only)
    other: Roofline  # attention, element-wise ops and the bf16 LM head
    table: CalibrationTable | None
    compute_dtype: str

    def op_s(self, op_class: str, flops: float, num_bytes: float) -> float:
        """A GEMM or element-wise op (element-wise ops are memory-bound: bf16 for the table lookup)."""
        roof = self.gemm if op_class == "gemm" else self.other
        if self.table is not None and (flops > 0.0 or num_bytes > 0.0):
            dtype = self.compute_dtype if op_class == "gemm" else _LM_DTYPE
            t = self.table.op_time_s(op_class, dtype, flops, num_bytes)
            if t is not None:
                return t
        return roof.time_s(flops, num_bytes)

    def attention_s(self, op_class: str, flops: float, num_bytes: float) -> float:
        """An attention kernel (bf16 compute)."""
        if self.table is not None:
            t = self.table.op_time_s(op_class, _LM_DTYPE, flops, num_bytes)
            if t is not None:
                return t
        return self.other.time_s(flops, num_bytes)

    def lm_head_s(self, flops: float, num_bytes: float) -> float:
        """The bf16 LM head GEMM."""
        if self.table is not None:
            t = self.table.op_time_s("gemm", _LM_DTYPE, flops, num_bytes)
            if t is not None:
                return t
        return self.other.time_s(flops, num_bytes)


@dataclass(frozen=True, slots=True)
class _Moe:
    """What a MoE block needs beyond its token-linear ops."""

    model: ModelSpec
    routing: RoutingProfile
    width_per_gpu: float  # one expert's intermediate width on one GPU
    weight_bytes: float
    assignments_per_token_per_gpu: float  # mean token-expert rows per GPU per token (for replica totals)
    alltoall: LinearTime  # dispatch or combine over ep GPUs (zero for ep = 1)
    alltoall_bytes_per_token: float  # k x hidden x 2 / ep (attention-DP: / 1, on the rank's own tokens)


@dataclass(frozen=True, slots=True)
class LayerWork:
    """All layers' token-dependent work; ``at(T)`` -> (compute s, comm s, flops, bytes) per GPU."""

    pricer: Pricer
    every_layer_ops: tuple[TokenOp, ...]  # attention block, all layers
    dense_ops: tuple[TokenOp, ...]  # dense MLP block
    moe_ops: tuple[TokenOp, ...]  # MoE block's norm, router and shared expert
    num_layers: int
    num_dense: int
    num_moe: int
    moe: _Moe | None
    allreduce: AllReduceTime
    num_allreduces: int
    allreduce_bytes_per_token: float
    _cache: dict[tuple[int, int], tuple[float, float, float, float]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def at(self, num_tokens: int, total_tokens: int = 0) -> tuple[float, float, float, float]:
        """``num_tokens`` on this GPU, ``total_tokens`` routed to the experts (0: the same; attention-DP:
        the replica's). Memoised (exact: a pure function of two ints, bounded in size)."""
        key = (num_tokens, total_tokens or num_tokens)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._compute(*key)
            if len(self._cache) < _CACHE_SIZE:
                self._cache[key] = hit
        return hit

    def _ops(self, ops: tuple[TokenOp, ...], t: int) -> tuple[float, float, float]:
        s = f = b = 0.0
        for op_class, a, b0, b1 in ops:
            flops, nbytes = a * t, b0 + b1 * t
            s += self.pricer.op_s(op_class, flops, nbytes)
            f += flops
            b += nbytes
        return s, f, b

    def _compute(self, t: int, t_total: int) -> tuple[float, float, float, float]:
        s, f, b = self._ops(self.every_layer_ops, t)
        s, f, b = s * self.num_layers, f * self.num_layers, b * self.num_layers
        if self.num_dense:
            s1, f1, b1 = self._ops(self.dense_ops, t)
            s, f, b = s + s1 * self.num_dense, f + f1 * self.num_dense, b + b1 * self.num_dense
        comm_s = self.num_allreduces * self.allreduce.time_s(t * self.allreduce_bytes_per_token)
        if self.num_moe:
            s1, c1, f1, b1 = self.moe_block(t, t_total)
            n = self.num_moe
            s, comm_s, f, b = s + n * s1, comm_s + n * c1, f + n * f1, b + n * b1
        return s, comm_s, f, b

    def moe_block(self, t: int, t_total: int = 0) -> tuple[float, float, float, float]:
        """One MoE block for ``t`` tokens on this GPU and ``t_total`` routed (0: t): (compute s and comm s
        of the slowest GPU, mean flops, bytes)."""
        moe = self.moe
        if moe is None or t <= 0:
            return 0.0, 0.0, 0.0, 0.0
        t_total = t_total or t
        s, f, b = self._ops(self.moe_ops, t)
        load = moe.routing.at(t_total)
        mean_rows = moe.assignments_per_token_per_gpu * t_total
        for op_class, flops, nbytes in routed_expert_ops(
            moe.model, moe.width_per_gpu, load.unique_experts, load.assignments, moe.weight_bytes
        ):
            s += self.pricer.op_s(op_class, flops, nbytes)
            f += flops * (mean_rows / load.assignments)
            b += nbytes
        return s, 2 * moe.alltoall.time_s(t * moe.alltoall_bytes_per_token), f, b

    def _load(self, num_tokens: int) -> GroupLoad:
        return GroupLoad(0.0, 0.0, 0.0) if self.moe is None else self.moe.routing.at(num_tokens)

    def imbalance_frac(self, num_tokens: int) -> float:
        """max / mean expert rows over the expert-parallel GPUs, minus 1."""
        return self._load(num_tokens).imbalance_frac

    def unique_experts(self, num_tokens: int) -> float:
        """Experts the slowest GPU reads per MoE layer."""
        return self._load(num_tokens).unique_experts


def _build_moe(
    model: ModelSpec,
    hardware: HardwareProfile,
    layout: LayoutConfig,
    pricer: Pricer,
    weight_bytes: float,
    seed: int,
) -> _Moe:
    tp, ep = layout.tp, layout.ep
    width = model.moe_intermediate_size / (tp // ep)  # ep = 1: sharded over tp; ep = tp: whole experts
    # a GPU sends its tokens' k rows: T/ep after the reduce-scatter, or its own t_r under attention-DP
    per_token_share = 1 if layout.attention_dp else ep
    k = model.num_experts_per_token
    up = (model.num_mlp_matrices - 1) * width
    flops_per_row = 2.0 * model.hidden_size * (up + width)
    weight_per_expert = model.hidden_size * (up + width) * weight_bytes
    act_per_row = (2 * model.hidden_size + up + width) * costs.ACTIVATION_BYTES
    f_s, b_s = 1.0 / pricer.gemm.flops_per_s, 1.0 / pricer.gemm.bytes_per_s

    def group_cost(unique: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.maximum(rows * flops_per_row * f_s, (unique * weight_per_expert + rows * act_per_row) * b_s)

    routing = RoutingProfile.sample(
        model.num_experts, k, ep, layout.expert_skew, stream(seed, "experts"), group_cost
    )
    return _Moe(
        model=model,
        routing=routing,
        width_per_gpu=width,
        weight_bytes=weight_bytes,
        assignments_per_token_per_gpu=k / ep,
        alltoall=alltoall_coefficients(hardware, ep),
        alltoall_bytes_per_token=k * model.hidden_size * costs.ACTIVATION_BYTES / per_token_share,
    )


def build_layer_work(
    model: ModelSpec,
    hardware: HardwareProfile,
    layout: LayoutConfig,
    pricer: Pricer,
    weight_bytes: float,
    kv_bytes: float,
    seed: int,
) -> LayerWork:
    """The layers' token-dependent work for ``model`` on ``layout`` (see the module docstring)."""
    num_moe = model.num_moe_layers
    moe = _build_moe(model, hardware, layout, pricer, weight_bytes, seed) if num_moe else None
    tp = 1 if layout.attention_dp else layout.tp  # everything but the routed experts
    num_allreduces = 0
    if tp > 1:
        num_allreduces = 2 * model.num_layers + 1 - (num_moe if layout.ep > 1 else 0)
    return LayerWork(
        pricer=pricer,
        every_layer_ops=attention_block_ops(model, tp, weight_bytes, kv_bytes),
        dense_ops=dense_block_ops(model, tp, weight_bytes),
        moe_ops=moe_block_token_ops(model, tp, weight_bytes) if num_moe else (),
        num_layers=model.num_layers,
        num_dense=model.num_dense_mlp_layers,
        num_moe=num_moe,
        moe=moe,
        allreduce=allreduce_algorithms(hardware, tp),
        num_allreduces=num_allreduces,
        allreduce_bytes_per_token=model.hidden_size * costs.ACTIVATION_BYTES,
    )
