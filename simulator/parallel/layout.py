"""Which layouts a model allows, and how heads and experts are split over the GPUs of a replica.

A replica is ``pp`` pipeline stages of ``tp`` GPUs; MoE experts are spread over the ``ep`` GPUs of a
stage (ep = tp) or sharded like dense MLPs (ep = 1); ``dp`` replicas serve behind the router::

    replica (tp=4, pp=2):  stage 0 [GPU0 GPU1 GPU2 GPU3] --activations--> stage 1 [GPU4 GPU5 GPU6 GPU7]
                           layers 0..L/2-1                                   layers L/2..L-1

Megatron-style tensor parallelism (Shoeybi et al. 2019, arXiv:1909.08053) as vLLM implements it:
query heads are split evenly (tp must divide them); KV heads are split when tp divides them and
replicated when tp is a multiple of them (each GPU then holds one KV head)::

    8 kv heads, tp = 4:   GPU0 [kv0 kv1] GPU1 [kv2 kv3] GPU2 [kv4 kv5] GPU3 [kv6 kv7]
    8 kv heads, tp = 16:  GPU0 [kv0] GPU1 [kv0] GPU2 [kv1] GPU3 [kv1] ... (each head on 2 GPUs)

Attention-DP with expert parallelism (``attention_dp``, MoE, ep = tp; DeepSeek-style serving)::

    tp = ep = 4:  GPU0 [all heads, seqs 0,4,..] GPU1 [all heads, seqs 1,5,..] ... (own KV cache each)
                      |____________ all-to-all dispatch / combine per MoE layer ____________|
                  GPU0 [experts 0..E/4-1]     GPU1 [experts E/4..E/2-1]     ...
"""

from __future__ import annotations

from simulator.config import LayoutConfig
from simulator.errors import ConfigError
from simulator.hardware.profile import HardwareProfile
from simulator.model.spec import ModelSpec


def _tp_ok(model: ModelSpec, tp: int) -> bool:
    kv = model.num_kv_heads
    return model.num_attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)


def valid_tp_values(model: ModelSpec, max_tp: int | None = None) -> list[int]:
    """Every tp the model allows (divisors of the query heads that satisfy the KV-head rule), ascending,
    optionally only those <= ``max_tp``."""
    limit = model.num_attention_heads if max_tp is None else min(max_tp, model.num_attention_heads)
    return [tp for tp in range(1, limit + 1) if _tp_ok(model, tp)]


def validate_layout(model: ModelSpec, hardware: HardwareProfile, layout: LayoutConfig) -> None:
    """Raise ConfigError naming the key when the layout cannot hold the model.

    tp must split the heads (below); pp must not exceed the layers; ep must be 1 or tp, and divide the
    routed experts (dense models need ep = 1). A tp above ``hardware.gpus_per_node`` is allowed: the
    replica spans nodes and its all-reduces cross the scale-out network (``simulator.parallel.comm``).
    ``attention_dp`` needs a MoE model, tp >= 2, ep = tp and pp = 1; the heads are then not split.
    """
    if layout.attention_dp:
        _validate_attention_dp(model, layout)
    else:
        _validate_tp(model, hardware, layout.tp)
    if layout.pp > model.num_layers:
        raise ConfigError(
            "layout.pp", layout.pp, f"at most the {model.num_layers} layers of {model.name} (one per stage)"
        )
    ep = layout.ep
    if ep == 1:
        return
    if not model.is_moe:
        raise ConfigError("layout.ep", ep, f"1: {model.name} is dense (no experts to spread)")
    if ep != layout.tp:
        raise ConfigError(
            "layout.ep",
            ep,
            f"1 or layout.tp = {layout.tp}: experts are spread over the GPUs of one pipeline stage "
            "(with layout.attention_dp, over the GPUs that run attention data-parallel)",
        )
    if model.num_experts % ep:
        divisors = [d for d in range(1, model.num_experts + 1) if model.num_experts % d == 0]
        raise ConfigError(
            "layout.ep",
            ep,
            f"a divisor of the {model.num_experts} routed experts of {model.name} "
            f"({', '.join(map(str, divisors))})",
        )


def _validate_attention_dp(model: ModelSpec, layout: LayoutConfig) -> None:
    """Attention-DP with expert parallelism (DeepSeek-style): a MoE model, tp >= 2 GPUs, ep = tp, pp = 1."""
    field, value = "layout.attention_dp", layout.attention_dp
    if not model.is_moe:
        raise ConfigError(field, value, f"false: {model.name} is dense (attention-DP pairs with MoE experts)")
    if layout.tp < 2:
        raise ConfigError(
            field, value, "false at layout.tp = 1, or layout.tp >= 2 (GPUs running attention data-parallel)"
        )
    if layout.ep != layout.tp:
        raise ConfigError(
            field,
            value,
            f"false, or with layout.ep = layout.tp = {layout.tp} (experts spread over the attention-DP GPUs; "
            f"got ep = {layout.ep})",
        )
    if layout.pp > 1:
        raise ConfigError(field, value, f"false with layout.pp = {layout.pp} (attention-DP needs pp = 1)")


def _validate_tp(model: ModelSpec, hardware: HardwareProfile, tp: int) -> None:
    if model.attention == "mla" and model.num_attention_heads % tp == 0:
        return  # MLA's latent KV is replicated on every GPU; only the query heads are split
    if _tp_ok(model, tp):
        return
    valid = ", ".join(str(v) for v in valid_tp_values(model))
    raise ConfigError(
        "layout.tp",
        tp,
        f"{model.name} has {model.num_attention_heads} attention heads and {model.num_kv_heads} KV heads; "
        f"tp must divide the attention heads and either divide the KV heads or be a multiple of them "
        f"(valid tp: {valid}; {hardware.name} has {hardware.gpus_per_node} GPUs per node)",
    )


def heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """Query heads on each GPU: num_attention_heads // tp."""
    return model.num_attention_heads // tp


def kv_heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """KV heads on each GPU: max(1, num_kv_heads // tp) (replicated when tp > num_kv_heads)."""
    return max(1, model.num_kv_heads // tp)


def kv_cache_elements_per_layer_per_gpu(model: ModelSpec, tp: int) -> int:
    """Cached elements per token and layer on one GPU: 2 x kv_heads_per_gpu x head_dim (GQA), or the
    whole latent kv_lora_rank + qk_rope_head_dim (MLA: vLLM keeps the latent on every TP GPU)."""
    if model.attention == "mla":
        return model.kv_cache_elements_per_layer
    return 2 * kv_heads_per_gpu(model, tp) * model.head_dim


def stage_layers(num_layers: int, pp: int) -> list[range]:
    """Contiguous layer ranges of the ``pp`` stages, the first ``num_layers % pp`` one layer longer."""
    base, extra = divmod(num_layers, pp)
    stages, start = [], 0
    for i in range(pp):
        size = base + (1 if i < extra else 0)
        stages.append(range(start, start + size))
        start += size
    return stages
