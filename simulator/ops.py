"""What-if timings of single operators: a GEMM, an attention pass, a MoE block, collectives, in seconds.

Public API for notebooks and the CLI (``hardware`` is a profile name such as ``"h100-sxm"`` or a
HardwareProfile). The formulas are those the step cost model uses: FLOPs and bytes from
``simulator.model.costs``, time from the roofline (``simulator.hardware.roofline``), collectives from
``simulator.parallel.comm``.
"""

from __future__ import annotations

from simulator.config import LayoutConfig, PrecisionConfig
from simulator.errors import ConfigError
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile, load_hardware
from simulator.hardware.roofline import CalibratedRoofline, Roofline, op_time_s
from simulator.model import ModelSpec, costs, load_model
from simulator.parallel import comm
from simulator.precision import BYTES_PER_ELEMENT, bytes_per_element
from simulator.step_cost import ATTENTION_COMPUTE_DTYPE, CostModel, compute_dtype_for

KV_DTYPES = ("bf16", "fp16", "fp8")


def _hardware(hardware: str | HardwareProfile) -> HardwareProfile:
    return hardware if isinstance(hardware, HardwareProfile) else load_hardware(hardware)


def _positive_int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, "a positive integer")
    return value


def _dtype(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(field, value, "known dtypes are " + ", ".join(allowed))
    return value


def _heads(num_heads: int, num_kv_heads: int) -> None:
    _positive_int("num_heads", num_heads)
    _positive_int("num_kv_heads", num_kv_heads)
    if num_heads % num_kv_heads:
        raise ConfigError("num_kv_heads", num_kv_heads, f"a divisor of num_heads = {num_heads}")


def gemm_time_s(
    hardware: str | HardwareProfile,
    m: int,
    n: int,
    k: int,
    dtype: str = "bf16",
    calibration: CalibrationTable | None = None,
) -> float:
    """Seconds for an (m x k) @ (k x n) GEMM with ``dtype`` weights and 2-byte activations, one GPU.

    Computes in ``dtype`` when the GPU has it natively, else in bf16 (weight-only quantization). With
    ``calibration``, the table's GEMM efficiency at this size replaces the profile's constant factors.
    """
    for field, value in (("m", m), ("n", n), ("k", k)):
        _positive_int(field, value)
    _dtype("dtype", dtype, tuple(BYTES_PER_ELEMENT))
    hw = _hardware(hardware)
    cost = costs.gemm_cost(m, n, k, bytes_per_element(dtype))
    compute_dtype = compute_dtype_for(hw, dtype)
    if calibration is not None:
        roof = CalibratedRoofline(calibration, Roofline.of(hw, compute_dtype))
        return roof.time_s("gemm", compute_dtype, cost.flops, cost.num_bytes)
    return op_time_s(hw, cost.flops, cost.num_bytes, compute_dtype)


def attention_prefill_time_s(
    hardware: str | HardwareProfile,
    batch: int,
    seq_len: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    dtype: str = "bf16",
) -> float:
    """Seconds for causal prefill attention of ``batch`` prompts of ``seq_len`` tokens (no cache), one
    kernel on one GPU, heads as given (already divided by TP); K and V in ``dtype``, compute in bf16."""
    _positive_int("batch", batch)
    _positive_int("seq_len", seq_len)
    _positive_int("head_dim", head_dim)
    _heads(num_heads, num_kv_heads)
    _dtype("dtype", dtype, KV_DTYPES)
    cost = costs.attention_prefill_cost_totals(
        batch * seq_len,
        batch * costs.causal_pairs(seq_len, 0),
        batch * seq_len,
        num_heads,
        num_kv_heads,
        head_dim,
        bytes_per_element(dtype),
    )
    return op_time_s(_hardware(hardware), cost.flops, cost.num_bytes, ATTENTION_COMPUTE_DTYPE)


def attention_decode_time_s(
    hardware: str | HardwareProfile,
    batch: int,
    kv_len: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    kv_dtype: str = "bf16",
) -> float:
    """Seconds for decode attention of ``batch`` sequences each reading ``kv_len`` cached tokens, one
    kernel on one GPU (heads already divided by TP), K and V in ``kv_dtype``, compute in bf16."""
    _positive_int("batch", batch)
    _positive_int("kv_len", kv_len)
    _positive_int("head_dim", head_dim)
    _heads(num_heads, num_kv_heads)
    _dtype("kv_dtype", kv_dtype, KV_DTYPES)
    cost = costs.attention_decode_cost(
        batch, batch * kv_len, num_heads, num_kv_heads, head_dim, bytes_per_element(kv_dtype)
    )
    return op_time_s(_hardware(hardware), cost.flops, cost.num_bytes, ATTENTION_COMPUTE_DTYPE)


def allreduce_time_s(hardware: str | HardwareProfile, num_bytes: float, num_gpus: int) -> float:
    """Seconds to all-reduce a ``num_bytes`` buffer over ``num_gpus`` GPUs (ring; 0 for one GPU)."""
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, int | float) or not num_bytes >= 0:
        raise ConfigError("num_bytes", num_bytes, "a number of bytes >= 0")
    _positive_int("num_gpus", num_gpus)
    return comm.allreduce_time_s(_hardware(hardware), float(num_bytes), num_gpus)


def alltoall_time_s(hardware: str | HardwareProfile, num_bytes: float, num_gpus: int) -> float:
    """Seconds for an all-to-all in which each of ``num_gpus`` GPUs holds ``num_bytes`` and sends
    (n-1)/n of it to its peers (MoE dispatch or combine; see ``simulator.parallel.comm``)."""
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, int | float) or not num_bytes >= 0:
        raise ConfigError("num_bytes", num_bytes, "a number of bytes >= 0")
    _positive_int("num_gpus", num_gpus)
    return comm.alltoall_time_s(_hardware(hardware), float(num_bytes), num_gpus)


def moe_time_s(
    hardware: str | HardwareProfile,
    model: str | ModelSpec,
    num_tokens: int,
    tp: int = 1,
    ep: int = 1,
    weights: str = "bf16",
    expert_skew: float = 0.0,
    seed: int = 0,
) -> float:
    """Seconds of one MoE block (norm, router, shared and routed experts, EP all-to-alls; no TP
    all-reduce) for ``num_tokens`` tokens, on the slowest GPU of a ``tp``-GPU stage with experts spread
    ``ep`` ways (1 or tp), routing sampled with Zipf ``expert_skew`` from ``seed``."""
    _positive_int("num_tokens", num_tokens)
    _dtype("weights", weights, tuple(BYTES_PER_ELEMENT))
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    if not spec.is_moe:
        raise ConfigError("model", spec.name, "a Mixture-of-Experts model (num_experts > 0)")
    _positive_int("tp", tp)
    _positive_int("ep", ep)
    layout = LayoutConfig(tp=tp, ep=ep, expert_skew=expert_skew)
    precision = PrecisionConfig.model_validate({"weights": weights})
    cost = CostModel.build(spec, _hardware(hardware), precision, layout, seed=seed)
    return cost.moe_block_time_s(num_tokens)
