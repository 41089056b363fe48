"""The operators of one layer on one GPU, as (op class, FLOPs/token, fixed bytes, bytes/token) tuples.

Units: FLOPs and bytes per GPU. Widths are already divided by the tensor-parallel degree; formulas are
those of ``simulator.model.costs``. The step cost model prices these ops; nothing here knows a GPU.

GQA layer (per GPU)::

    [add+RMSNorm] -> [QKV GEMM] -> [RoPE] -> [KV store] -> attention -> [O GEMM]

MLA layer (DeepSeek-V2/V3, arXiv:2405.04434; vLLM's MLA: q_a and kv_a replicated on every GPU, the
rest split by heads)::

    [add+RMSNorm] -> [q_a GEMM H->q_lora] -> [q norm] -> [q_b GEMM q_lora->h(nope+rope)]
                  -> [kv_a GEMM H->kv_lora+rope] -> [kv norm] -> [RoPE] -> [KV store kv_lora+rope]
                  -> [kv_b GEMM kv_lora->h(nope+v)] -> attention -> [O GEMM h v->H]

Decode attention runs on the latent (kv_b absorbed into q and o, as FlashMLA does): per cached token
and head, scores over kv_lora + rope and values over kv_lora; prefill attention runs on decompressed
heads (qk_nope + rope, v).

MLP block: [add+RMSNorm] -> [gate+up GEMM] -> [SiLU x mul] -> [down GEMM]; MoE block: [add+RMSNorm] ->
[router GEMM H->E, bf16] -> shared expert (as an MLP) -> routed experts (``routed_expert_ops``).
"""

from __future__ import annotations

from typing import NamedTuple

from simulator.model import costs
from simulator.model.spec import ModelSpec

ROUTER_WEIGHT_BYTES = 2.0
"""The router stays in bf16 in quantized checkpoints (e.g. gpt-oss's mxfp4 config keeps ``mlp.router``)."""

TokenOp = tuple[str, float, float, float]  # (op class, flops/token, fixed bytes, bytes/token)


class AttentionCoefficients(NamedTuple):
    """One attention kernel's costs on one GPU (one layer)."""

    flops_per_pair: float  # per query-key pair
    q_o_bytes_per_token: float  # q read and o written per new token
    kv_bytes_per_kv_token: float  # per cached token read


def gemm_op(n: float, k: float, weight_bytes: float) -> TokenOp:
    """A GEMM k -> n: flops 2 n k per token; bytes n k w (weights, once) + (k + n) x 2 per token."""
    return ("gemm", 2.0 * n * k, n * k * weight_bytes, (n + k) * costs.ACTIVATION_BYTES)


def elementwise_op(per_token: costs.OpCost) -> TokenOp:
    """A memory-bound op whose cost is per token."""
    return ("elementwise", per_token.flops, 0.0, per_token.num_bytes)


def attention_block_ops(
    model: ModelSpec, tp: int, weight_bytes: float, kv_bytes: float
) -> tuple[TokenOp, ...]:
    """The token-linear ops of a layer's attention block (everything but the attention kernel)."""
    hidden, h = model.hidden_size, model.num_attention_heads // tp
    norm = elementwise_op(costs.add_rmsnorm_cost(1, hidden))
    if model.attention == "mla":
        qk, latent = model.qk_head_dim, model.kv_lora_rank + model.qk_rope_head_dim
        ops: list[TokenOp] = [norm]
        if model.q_lora_rank:
            ops += [
                gemm_op(model.q_lora_rank, hidden, weight_bytes),
                elementwise_op(costs.elementwise_cost(1, model.q_lora_rank, 1.0, 1.0)),
                gemm_op(h * qk, model.q_lora_rank, weight_bytes),
            ]
        else:
            ops.append(gemm_op(h * qk, hidden, weight_bytes))
        return (
            *ops,
            gemm_op(latent, hidden, weight_bytes),
            elementwise_op(costs.elementwise_cost(1, model.kv_lora_rank, 1.0, 1.0)),
            elementwise_op(costs.rope_cost(1, h, 1, model.qk_rope_head_dim)),
            ("elementwise", latent, 0.0, latent * (costs.ACTIVATION_BYTES + kv_bytes)),
            gemm_op(h * (model.qk_nope_head_dim + model.v_head_dim), model.kv_lora_rank, weight_bytes),
            gemm_op(hidden, h * model.v_head_dim, weight_bytes),
        )
    d, g = model.head_dim, max(1, model.num_kv_heads // tp)
    return (
        norm,
        gemm_op((h + 2 * g) * d, hidden, weight_bytes),
        elementwise_op(costs.rope_cost(1, h, g, d)),
        elementwise_op(costs.kv_store_cost(1, g, d, kv_bytes)),
        gemm_op(hidden, h * d, weight_bytes),
    )


def attention_coefficients(model: ModelSpec, tp: int, kv_bytes: float, decode: bool) -> AttentionCoefficients:
    """Per-GPU attention kernel costs: GQA 4 d h FLOPs per pair; MLA as in the module docstring."""
    h, act = model.num_attention_heads // tp, costs.ACTIVATION_BYTES
    if model.attention == "mla":
        latent = model.kv_lora_rank + model.qk_rope_head_dim
        if decode:
            return AttentionCoefficients(
                2.0 * h * (latent + model.kv_lora_rank),
                h * (latent + model.kv_lora_rank) * act,
                latent * kv_bytes,
            )
        qk, v = model.qk_head_dim, model.v_head_dim
        return AttentionCoefficients(2.0 * h * (qk + v), h * (qk + v) * act, latent * kv_bytes)
    d, g = model.head_dim, max(1, model.num_kv_heads // tp)
    return AttentionCoefficients(4.0 * d * h, 2.0 * h * d * act, 2.0 * g * d * kv_bytes)


def mlp_ops(model: ModelSpec, width_per_gpu: float, weight_bytes: float) -> tuple[TokenOp, ...]:
    """A gated (or plain) MLP of ``width_per_gpu`` on one GPU, without the norm in front of it."""
    hidden = model.hidden_size
    up_width = (model.num_mlp_matrices - 1) * width_per_gpu
    return (
        gemm_op(up_width, hidden, weight_bytes),
        elementwise_op(costs.mlp_activation_cost(1, width_per_gpu, model.mlp_gated)),
        gemm_op(hidden, width_per_gpu, weight_bytes),
    )


def dense_block_ops(model: ModelSpec, tp: int, weight_bytes: float) -> tuple[TokenOp, ...]:
    """A dense layer's MLP block: add+RMSNorm and the MLP of intermediate_size / tp."""
    norm = elementwise_op(costs.add_rmsnorm_cost(1, model.hidden_size))
    return (norm, *mlp_ops(model, model.intermediate_size / tp, weight_bytes))


def moe_block_token_ops(model: ModelSpec, tp: int, weight_bytes: float) -> tuple[TokenOp, ...]:
    """The token-linear part of a MoE block: add+RMSNorm, the router (replicated) and the shared expert."""
    ops: list[TokenOp] = [
        elementwise_op(costs.add_rmsnorm_cost(1, model.hidden_size)),
        gemm_op(model.num_experts, model.hidden_size, ROUTER_WEIGHT_BYTES),
    ]
    if model.shared_expert_intermediate_size:
        ops += mlp_ops(model, model.shared_expert_intermediate_size / tp, weight_bytes)
    return tuple(ops)


def routed_expert_ops(
    model: ModelSpec, width_per_gpu: float, unique_experts: float, assignments: float, weight_bytes: float
) -> tuple[tuple[str, float, float], ...]:
    """Routed experts on one GPU as (op class, flops, bytes): a grouped GEMM reads the weights of the
    ``unique_experts`` it holds that were hit, once, and computes ``assignments`` token-expert rows;
    tokens are gathered before and scattered after (permute / unpermute, H x 2 bytes read and written)."""
    hidden, act = model.hidden_size, costs.ACTIVATION_BYTES
    up = (model.num_mlp_matrices - 1) * width_per_gpu
    activation = costs.mlp_activation_cost(assignments, width_per_gpu, model.mlp_gated)
    permute = costs.elementwise_cost(assignments, hidden, 1.0, 1.0)
    return (
        ("elementwise", permute.flops, permute.num_bytes),
        (
            "gemm",
            2.0 * assignments * up * hidden,
            unique_experts * up * hidden * weight_bytes + assignments * (hidden + up) * act,
        ),
        ("elementwise", activation.flops, activation.num_bytes),
        (
            "gemm",
            2.0 * assignments * hidden * width_per_gpu,
            unique_experts * hidden * width_per_gpu * weight_bytes
            + assignments * (width_per_gpu + hidden) * act,
        ),
        ("elementwise", permute.flops, permute.num_bytes),
    )
