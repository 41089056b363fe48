"""Which tensor-parallel degrees a model allows, and how heads are split over the GPUs of a replica.

Megatron-style tensor parallelism (Shoeybi et al. 2019, arXiv:1909.08053) as vLLM implements it:
query heads are split evenly (tp must divide them); KV heads are split when tp divides them and
replicated when tp is a multiple of them (each GPU then holds one KV head)::

    8 kv heads, tp = 4:   GPU0 [kv0 kv1] GPU1 [kv2 kv3] GPU2 [kv4 kv5] GPU3 [kv6 kv7]
    8 kv heads, tp = 16:  GPU0 [kv0] GPU1 [kv0] GPU2 [kv1] GPU3 [kv1] ... (each head on 2 GPUs)
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
    """Raise ConfigError("layout.tp", ...) when the model's heads cannot be split ``layout.tp`` ways.

    A tp above ``hardware.gpus_per_node`` is allowed: the replica spans nodes and its all-reduces cross
    the scale-out network (see ``simulator.parallel.comm``).
    """
    tp = layout.tp
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
