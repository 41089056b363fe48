"""How a replica's HBM is spent: weights, activations, runtime reserve, and the paged KV cache.

Units: bytes, tokens, blocks. The KV capacity follows nano-vllm's formula (``model_runner.allocate_kv_cache``)
with the runtime reserve made explicit::

    num_kv_blocks = floor((hbm x gpu_memory_utilization - weights - activations - reserve)
                          / (block_size x kv_bytes_per_token_per_gpu))

Every GPU of a TP group holds its shard (its KV heads) of the same blocks, so the count is per replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.config import LayoutConfig, PrecisionConfig, SchedulerConfig
from simulator.errors import DoesNotFitError
from simulator.hardware.profile import HardwareProfile
from simulator.model.costs import ACTIVATION_BYTES
from simulator.model.spec import ModelSpec
from simulator.parallel.layout import heads_per_gpu, kv_heads_per_gpu, valid_tp_values, validate_layout
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
    num_kv_blocks: int  # per replica (every GPU holds its shard of the same blocks)

    @property
    def max_kv_tokens(self) -> int:
        """Tokens the KV cache holds: num_kv_blocks x block_size."""
        return self.num_kv_blocks * self.block_size


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV-cache bytes of one token, unsharded: 2 (K and V) x layers x kv_heads x head_dim x bytes.

    Llama-3.1-70B in bf16: 2 x 80 x 8 x 128 x 2 = 327,680 bytes.
    """
    return 2.0 * model.num_layers * model.num_kv_heads * model.head_dim * bytes_per_element(kv_dtype)


def kv_bytes_per_token_per_gpu(model: ModelSpec, kv_dtype: str, tp: int) -> float:
    """One token's KV bytes on one GPU of a TP group: 2 x layers x kv_heads_per_gpu x head_dim x bytes."""
    return 2.0 * model.num_layers * kv_heads_per_gpu(model, tp) * model.head_dim * bytes_per_element(kv_dtype)


def weights_bytes_per_gpu(model: ModelSpec, weights_dtype: str, tp: int) -> float:
    """Weight bytes on one GPU of a TP group.

    Per layer: Q and O (hidden x h/tp x d each), K and V (hidden x kv_heads_per_gpu x d each: replicated
    when tp > kv heads), MLP (2 or 3 x hidden x intermediate / tp) in ``weights_dtype``; biases, q/k norms
    and the two RMSNorm vectors (replicated) in bf16. Embedding and LM head vocab-parallel (/ tp) in bf16
    (``EMBEDDING_DTYPE``), plus the final norm. Quantization scales (~1-3% for group-wise int4) are not
    counted.
    """
    hidden, d = model.hidden_size, model.head_dim
    q_width, kv_width = heads_per_gpu(model, tp) * d, kv_heads_per_gpu(model, tp) * d
    num_mlp = 3 if model.mlp_gated else 2
    matrices = 2 * hidden * q_width + 2 * hidden * kv_width + num_mlp * hidden * model.intermediate_size / tp
    small = 2 * hidden + (q_width + 2 * kv_width if model.attention_bias else 0)
    small += 2 * d if model.qk_norm else 0
    layer = matrices * bytes_per_element(weights_dtype) + small * ACTIVATION_BYTES
    emb_bytes = bytes_per_element(EMBEDDING_DTYPE)
    embeddings = (model.embedding_params + model.lm_head_params) / tp * emb_bytes + hidden * ACTIVATION_BYTES
    return model.num_layers * layer + embeddings


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
    mlp_width = (3.0 if model.mlp_gated else 2.0) * inter
    per_token = (2 * model.hidden_size + max(attn_width, mlp_width)) * ACTIVATION_BYTES
    logits = min(scheduler.max_num_seqs, tokens) * model.vocab_size * LOGIT_BYTES_PER_ELEMENT
    return tokens * per_token + logits


def _plan(
    model: ModelSpec,
    hardware: HardwareProfile,
    precision: PrecisionConfig,
    tp: int,
    scheduler: SchedulerConfig,
) -> tuple[MemoryPlan, float]:
    """The plan (num_kv_blocks clamped at 0) and the bytes one more block needs beyond what is left."""
    usable = hardware.hbm_bytes * scheduler.gpu_memory_utilization
    weights = weights_bytes_per_gpu(model, precision.weights, tp)
    activations = activation_bytes_per_gpu(model, tp, scheduler)
    per_gpu = kv_bytes_per_token_per_gpu(model, precision.kv_cache, tp)
    block_bytes = scheduler.block_size * per_gpu
    free = usable - weights - activations - RUNTIME_RESERVE_BYTES
    num_blocks = max(0, math.floor(free / block_bytes))
    plan = MemoryPlan(
        hbm_bytes_per_gpu=hardware.hbm_bytes,
        usable_bytes_per_gpu=usable,
        weights_bytes_per_gpu=weights,
        activation_bytes_per_gpu=activations,
        runtime_reserve_bytes_per_gpu=RUNTIME_RESERVE_BYTES,
        kv_bytes_per_token=per_gpu * tp,
        kv_bytes_per_token_per_gpu=per_gpu,
        block_size=scheduler.block_size,
        num_kv_blocks=num_blocks,
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
    plan, missing = _plan(model, hardware, precision, layout.tp, scheduler)
    if plan.num_kv_blocks < 1:
        what = f"{model.name} with {precision.weights} weights at tp={layout.tp} on {hardware.name}"
        raise DoesNotFitError(
            what,
            required_bytes=plan.usable_bytes_per_gpu + missing,
            available_bytes=plan.usable_bytes_per_gpu,
            suggestion=fit_suggestion(model, hardware, precision, layout, scheduler),
        )
    return plan
