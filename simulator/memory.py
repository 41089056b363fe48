"""How a replica's HBM is spent: weights, activations, runtime reserve, and the paged KV cache.

Units: bytes, tokens, blocks. The KV capacity follows nano-vllm's formula (``model_runner.allocate_kv_cache``)
with the runtime reserve made explicit::

    num_kv_blocks = floor((hbm x gpu_memory_utilization - weights - activations - reserve)
                          / (block_size x kv_bytes_per_token_per_gpu))

Every GPU of a TP group holds its shard (its KV heads) of the same blocks, so the count is per replica.
With pipeline parallelism each GPU holds its stage's layers only; the fullest stage decides. MLA models
cache one latent (kv_lora_rank + qk_rope_head_dim) per token and layer, on every GPU of the TP group.
MoE experts are split over the stage's GPUs (ep = 1: each expert sharded by tp; ep = tp: E / ep whole
experts per GPU): either way a GPU holds 1/tp of the expert weights.

Attention-DP (``layout.attention_dp``): every GPU holds the whole attention, dense MLP, shared expert,
embedding and LM head (tp = 1 for them) and 1/tp of the routed experts; each GPU caches only its own
sequences, whole (all KV heads, or the MLA latent), so the replica has tp pools of the blocks one GPU
fits: ``num_kv_blocks = tp x blocks per GPU``. The engine sees them as one pool (sequences spread evenly
over the ranks); a request that needs more than one GPU's blocks is rejected
(``resolve.rejection_reasons``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.config import LayoutConfig, PrecisionConfig, SchedulerConfig
from simulator.errors import DoesNotFitError
from simulator.hardware.profile import HardwareProfile
from simulator.model.costs import ACTIVATION_BYTES
from simulator.model.spec import ModelSpec
from simulator.parallel.layout import (
    heads_per_gpu,
    kv_cache_elements_per_layer_per_gpu,
    kv_heads_per_gpu,
    stage_layers,
    valid_tp_values,
    validate_layout,
)
from simulator.precision import bytes_per_element
from simulator.step_cost import EMBEDDING_DTYPE
from simulator.units import GiB

RUNTIME_RESERVE_BYTES = 1.0 * GiB
"""Per GPU, outside weights, activations and KV cache: CUDA context, NCCL buffers and CUDA graphs.
vLLM start-up logs on H100/A100-class GPUs report "non_torch_memory" of 0.15-0.35 GiB and CUDA graphs of
0.13-0.5 GiB (vllm-project/vllm issues #14452, #15340; PRs #10027, #11349); 1 GiB covers both with margin."""

LOGIT_BYTES_PER_ELEMENT = ACTIVATION_BYTES + 4.0
"""Logits at the sampler: the bf16 LM-head output plus the fp32 copy the sampler works on."""

MAX_SUGGESTED_TP_NODES = 8
"""The fit suggestion searches tp up to gpus_per_node x this many nodes."""


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Per-GPU memory budget of one replica and the KV-cache capacity it leaves."""

    hbm_bytes_per_gpu: float
    usable_bytes_per_gpu: float  # hbm x scheduler.gpu_memory_utilization
    weights_bytes_per_gpu: float
    activation_bytes_per_gpu: float  # peak activations for max_num_batched_tokens (incl. logits)
    runtime_reserve_bytes_per_gpu: float  # CUDA context, NCCL buffers, CUDA graphs (RUNTIME_RESERVE_BYTES)
    kv_bytes_per_token: float  # whole replica, with KV-head replication when tp > kv heads
    kv_bytes_per_token_per_gpu: float
    block_size: int
    num_kv_blocks: int  # per replica (every GPU holds its shard of the same blocks; attention-DP: x ranks)
    num_kv_pools: int = 1  # attention-DP ranks, each caching its own sequences (1 otherwise)

    @property
    def max_kv_tokens(self) -> int:
        """Tokens the KV cache holds: num_kv_blocks x block_size."""
        return self.num_kv_blocks * self.block_size


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV-cache bytes of one token, unsharded: layers x cached elements per layer x bytes.

    GQA: 2 (K and V) x kv_heads x head_dim per layer; Llama-3.1-70B in bf16: 2 x 80 x 8 x 128 x 2 =
    327,680 bytes. MLA: kv_lora_rank + qk_rope_head_dim; DeepSeek-V3 in bf16: 61 x 576 x 2 = 70,272.
    """
    return model.num_layers * model.kv_cache_elements_per_layer * bytes_per_element(kv_dtype)


def kv_bytes_per_token_per_gpu(model: ModelSpec, kv_dtype: str, tp: int, pp: int = 1) -> float:
    """One token's KV bytes on one GPU of the fullest stage: its layers x its share of a layer's cache."""
    layers = len(stage_layers(model.num_layers, pp)[0])
    return layers * kv_cache_elements_per_layer_per_gpu(model, tp) * bytes_per_element(kv_dtype)


def _attention_weight_elements(model: ModelSpec, tp: int) -> float:
    """One layer's attention matrices on one GPU (MLA: q_a and kv_a replicated, the rest split)."""
    hidden = model.hidden_size
    if model.attention == "mla":
        h, qk = model.num_attention_heads / tp, model.qk_head_dim
        q = model.q_lora_rank * (hidden + h * qk) if model.q_lora_rank else hidden * h * qk
        kv: float = hidden * (model.kv_lora_rank + model.qk_rope_head_dim)
        kv += model.kv_lora_rank * h * (model.qk_nope_head_dim + model.v_head_dim)
        return q + kv + h * model.v_head_dim * hidden
    d = model.head_dim
    q_width, kv_width = heads_per_gpu(model, tp) * d, kv_heads_per_gpu(model, tp) * d
    return 2 * hidden * q_width + 2 * hidden * kv_width


def _layer_weight_bytes(
    model: ModelSpec, weights_dtype: str, tp: int, index: int, expert_tp: int | None = None
) -> float:
    """Layer ``index``'s weight bytes on one GPU (quantized matrices, bf16 vectors and router): everything
    split by ``tp`` but the routed experts, split by ``expert_tp`` (default tp; attention-DP: tp = 1)."""
    hidden, d = model.hidden_size, model.head_dim
    matrices = _attention_weight_elements(model, tp)
    small = 2.0 * hidden
    if model.is_moe_layer(index):
        matrices += (model.num_experts * model.expert_params) / (expert_tp or tp)
        matrices += model.num_mlp_matrices * hidden * model.shared_expert_intermediate_size / tp
        small += hidden * model.num_experts  # router, bf16, replicated
    else:
        matrices += model.num_mlp_matrices * hidden * model.intermediate_size / tp
    if model.attention == "gqa" and model.attention_bias:
        small += (heads_per_gpu(model, tp) + 2 * kv_heads_per_gpu(model, tp)) * d
    if model.attention == "gqa" and model.qk_norm:
        small += 2 * d
    if model.attention == "mla":
        small += model.kv_lora_rank + model.q_lora_rank
    return matrices * bytes_per_element(weights_dtype) + small * ACTIVATION_BYTES


def weights_bytes_per_gpu(
    model: ModelSpec, weights_dtype: str, tp: int, pp: int = 1, attention_dp: bool = False
) -> float:
    """Weight bytes on one GPU of the fullest pipeline stage.

    Per layer: attention (Q and O split by heads, K and V by KV heads: replicated when tp > kv heads;
    MLA as in ``_attention_weight_elements``), the dense MLP or the MoE block (experts and shared expert
    / tp) in ``weights_dtype``; norms, biases and the router in bf16. Embedding (first stage) and LM
    head (last stage) vocab-parallel (/ tp) in bf16 (``EMBEDDING_DTYPE``), plus the final norm.
    Quantization scales (~1-3% for group-wise int4) are not counted. ``attention_dp``: all but the
    routed experts whole on every GPU, the routed experts / tp.
    """
    expert_tp = tp
    if attention_dp:
        tp = 1
    emb_bytes = bytes_per_element(EMBEDDING_DTYPE)
    embedding = model.embedding_params / tp * emb_bytes
    head = model.lm_head_params / tp * emb_bytes + model.hidden_size * ACTIVATION_BYTES
    stages = stage_layers(model.num_layers, pp)
    totals = []
    for i, layers in enumerate(stages):
        total = sum(_layer_weight_bytes(model, weights_dtype, tp, j, expert_tp) for j in layers)
        total += embedding if i == 0 else 0.0
        total += head if i == len(stages) - 1 else 0.0
        totals.append(total)
    return max(totals)


def activation_bytes_per_gpu(model: ModelSpec, tp: int, scheduler: SchedulerConfig) -> float:
    """Peak activation bytes of a forward pass over ``max_num_batched_tokens`` tokens, one GPU.

    T x 2 bytes x (2 hidden [hidden states and residual] + the widest transient of a layer: the QKV
    output plus the attention output, or the gate+up output plus the activation output), plus the
    logits of min(max_num_seqs, T) tokens at the full vocabulary (bf16 + fp32 at the sampler).
    """
    tokens = scheduler.max_num_batched_tokens
    d, inter = model.head_dim, model.intermediate_size / tp
    h, g = heads_per_gpu(model, tp), kv_heads_per_gpu(model, tp)
    attn_width = (h + 2 * g) * d + h * d
    if model.attention == "mla":
        attn_width = h * (model.qk_head_dim + model.qk_nope_head_dim + 2 * model.v_head_dim)
    mlp_width = (3.0 if model.mlp_gated else 2.0) * inter
    if model.is_moe:  # routed rows (k per token, spread over tp GPUs) and their dispatch buffers
        k = model.num_experts_per_token
        mlp_width = max(mlp_width, k * (3.0 * model.moe_intermediate_size / tp + model.hidden_size))
    per_token = (2 * model.hidden_size + max(attn_width, mlp_width)) * ACTIVATION_BYTES
    logits = min(scheduler.max_num_seqs, tokens) * model.vocab_size * LOGIT_BYTES_PER_ELEMENT
    return tokens * per_token + logits


def _plan(
    model: ModelSpec,
    hardware: HardwareProfile,
    precision: PrecisionConfig,
    tp: int,
    scheduler: SchedulerConfig,
    pp: int = 1,
    attention_dp: bool = False,
) -> tuple[MemoryPlan, float]:
    """The plan (num_kv_blocks clamped at 0) and the bytes one more block needs beyond what is left."""
    usable = hardware.hbm_bytes * scheduler.gpu_memory_utilization
    attn_tp = 1 if attention_dp else tp
    weights = weights_bytes_per_gpu(model, precision.weights, tp, pp, attention_dp)
    activations = activation_bytes_per_gpu(model, attn_tp, scheduler)
    per_gpu = kv_bytes_per_token_per_gpu(model, precision.kv_cache, attn_tp, pp)
    pools = tp if attention_dp else 1
    block_bytes = scheduler.block_size * per_gpu
    free = usable - weights - activations - RUNTIME_RESERVE_BYTES
    num_blocks = max(0, math.floor(free / block_bytes))
    plan = MemoryPlan(
        hbm_bytes_per_gpu=hardware.hbm_bytes,
        usable_bytes_per_gpu=usable,
        weights_bytes_per_gpu=weights,
        activation_bytes_per_gpu=activations,
        runtime_reserve_bytes_per_gpu=RUNTIME_RESERVE_BYTES,
        kv_bytes_per_token=per_gpu * attn_tp * pp,
        kv_bytes_per_token_per_gpu=per_gpu,
        block_size=scheduler.block_size,
        num_kv_blocks=num_blocks * pools,
        num_kv_pools=pools,
    )
    return plan, block_bytes - free


def _smallest_fitting_tp(
    model: ModelSpec,
    hardware: HardwareProfile,
    precision: PrecisionConfig,
    scheduler: SchedulerConfig,
    min_tp: int,
) -> tuple[int, int] | None:
    """(tp, num_kv_blocks) for the smallest valid tp >= ``min_tp`` (up to gpus_per_node x 8) that fits."""
    for tp in valid_tp_values(model, hardware.gpus_per_node * MAX_SUGGESTED_TP_NODES):
        if tp >= min_tp:
            plan, _ = _plan(model, hardware, precision, tp, scheduler)
            if plan.num_kv_blocks >= 1:
                return tp, plan.num_kv_blocks
    return None


def fit_suggestion(
    model: ModelSpec,
    hardware: HardwareProfile,
    precision: PrecisionConfig,
    layout: LayoutConfig,
    scheduler: SchedulerConfig,
) -> str:
    """What would fit instead, computed: a larger tp, and/or fp8 weights (at the smallest tp that fits)."""
    options = []
    bigger = _smallest_fitting_tp(model, hardware, precision, scheduler, layout.tp + 1)
    if bigger is not None:
        options.append(f"layout.tp = {bigger[0]} ({bigger[1]} KV blocks)")
    if bytes_per_element(precision.weights) > bytes_per_element("fp8"):
        fp8 = precision.model_copy(update={"weights": "fp8"})
        with_fp8 = _smallest_fitting_tp(model, hardware, fp8, scheduler, layout.tp)
        if with_fp8 is not None:
            tp, blocks = with_fp8
            options.append(f"precision.weights = 'fp8' with layout.tp = {tp} ({blocks} KV blocks)")
    max_tp = hardware.gpus_per_node * MAX_SUGGESTED_TP_NODES
    if not options:
        return (
            f"No valid tp up to {max_tp} fits (nor fp8 weights); use a smaller model, a GPU with more HBM, "
            "or lower scheduler.max_num_batched_tokens."
        )
    return "It would fit with " + ", or with ".join(options) + "."


def plan_memory(
    model: ModelSpec,
    hardware: HardwareProfile,
    precision: PrecisionConfig,
    layout: LayoutConfig,
    scheduler: SchedulerConfig,
) -> MemoryPlan:
    """The replica's memory plan; DoesNotFitError when not even one KV block fits (with a suggestion)."""
    validate_layout(model, hardware, layout)
    plan, missing = _plan(model, hardware, precision, layout.tp, scheduler, layout.pp, layout.attention_dp)
    if plan.num_kv_blocks < 1:
        where = f"tp={layout.tp}" + (f", pp={layout.pp}" if layout.pp > 1 else "")
        where += ", attention-DP" if layout.attention_dp else ""
        what = f"{model.name} with {precision.weights} weights at {where} on {hardware.name}"
        raise DoesNotFitError(
            what,
            required_bytes=plan.usable_bytes_per_gpu + missing,
            available_bytes=plan.usable_bytes_per_gpu,
            suggestion=fit_suggestion(model, hardware, precision, layout, scheduler),
        )
    return plan
