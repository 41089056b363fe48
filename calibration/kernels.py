"""Micro-benchmarks of single kernels: GEMM, attention (prefill, decode), memory-bound ops, collectives.

Each function returns a measurement dict (plain JSON data): ``op_class``, ``dtype``, ``op``, the shape,
``flops`` and ``num_bytes`` counted as the simulator counts them (``simulator.model.costs``: 2-byte
activations, weights read once), and ``time_s`` (median). Imports jax, numpy and the standard library
only. Units: FLOPs, bytes, seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from calibration.timing import RandomInputs, Timing, num_arg_sets, time_jitted

DTYPES: dict[str, Any] = {"bf16": jnp.bfloat16, "fp16": jnp.float16}
FP8_FORMATS: dict[str, Any] = {"e4m3fn": jnp.float8_e4m3fn, "e4m3fnuz": jnp.float8_e4m3fnuz}
ACT_BYTES = 2.0
AttentionImpl = Literal["xla", "cudnn"]


def _record(
    op_class: str, dtype: str, op: str, shape: dict[str, Any], flops: float, nbytes: float, timing: Timing
) -> dict[str, Any]:
    return {
        "op_class": op_class,
        "dtype": dtype,
        "op": op,
        "shape": shape,
        "flops": flops,
        "num_bytes": nbytes,
        "time_s": timing.median_s,
        "min_s": timing.min_s,
        "max_s": timing.max_s,
        "repeats": timing.repeats,
        "num_arg_sets": timing.num_arg_sets,
    }


ArraySpec = tuple[tuple[int, ...], Any, float]  # shape, dtype, scale


def _sets(inputs: RandomInputs, shapes: list[ArraySpec]) -> list[tuple[Any, ...]]:
    """Rotated input sets of arrays (shape, dtype, scale): as many as ``num_arg_sets`` asks for."""
    nbytes = sum(float(np.prod(s)) * jnp.dtype(d).itemsize for s, d, _ in shapes)
    return [tuple(inputs.array(s, d, c) for s, d, c in shapes) for _ in range(num_arg_sets(nbytes))]


def gemm(
    inputs: RandomInputs, m: int, n: int, k: int, dtype: str, repeats: int, fp8_format: str = "e4m3fn"
) -> dict[str, Any]:
    """(m x k) @ (k x n), weights and activations in ``dtype`` (fp8: ``fp8_format`` inputs, bf16 out)."""
    if dtype == "fp8":
        in_dtype, w_bytes = FP8_FORMATS[fp8_format], 1.0
    else:
        in_dtype, w_bytes = DTYPES[dtype], ACT_BYTES

    def fn(x: jax.Array, w: jax.Array) -> jax.Array:
        return jnp.matmul(x, w, preferred_element_type=jnp.bfloat16)

    sets = _sets(inputs, [((m, k), in_dtype, 1.0), ((k, n), in_dtype, k**-0.5)])
    t = time_jitted(fn, sets, repeats)
    nbytes = n * k * w_bytes + (m * k + m * n) * ACT_BYTES
    return _record("gemm", dtype, "matmul", {"m": m, "n": n, "k": k}, 2.0 * m * n * k, nbytes, t)


Attention = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def _attention_fn(impl: AttentionImpl, causal: bool) -> Attention:
    def fn(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=impl)

    return fn


def attention_impl(heads: int, kv_heads: int, head_dim: int) -> AttentionImpl:
    """``cudnn`` (fused flash attention) when it compiles here for causal prefill and for decode, else
    ``xla`` (the unfused reference: scores materialized). On CPU always ``xla``."""
    if jax.default_backend() == "cpu":
        return "xla"
    inputs = RandomInputs(0, pool_elements=1 << 16)
    try:
        for q_len, kv_len, causal in ((128, 128, True), (1, 256, False)):
            q = inputs.array((1, q_len, heads, head_dim), jnp.bfloat16)
            kv = inputs.array((1, kv_len, kv_heads, head_dim), jnp.bfloat16)
            jax.jit(_attention_fn("cudnn", causal)).lower(q, kv, kv).compile()
    except Exception:  # any failure to build the fused kernel: the XLA path is measured instead
        return "xla"
    return "cudnn"


def attention_prefill(
    inputs: RandomInputs,
    batch: int,
    seq: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    repeats: int,
    impl: AttentionImpl = "xla",
) -> dict[str, Any]:
    """Causal GQA self-attention of ``batch`` prompts of ``seq`` tokens, bf16 (no cache)."""
    q_shape, kv_shape = (batch, seq, heads, head_dim), (batch, seq, kv_heads, head_dim)
    bf16 = jnp.bfloat16
    sets = _sets(inputs, [(q_shape, bf16, 1.0), (kv_shape, bf16, 1.0), (kv_shape, bf16, 1.0)])
    t = time_jitted(_attention_fn(impl, True), sets, repeats)
    pairs = batch * seq * (seq + 1) / 2.0
    flops = 4.0 * head_dim * heads * pairs
    nbytes = 2.0 * batch * seq * heads * head_dim * ACT_BYTES + 2.0 * batch * seq * kv_heads * head_dim * 2
    shape = {"batch": batch, "seq": seq, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim}
    return _record("attention_prefill", "bf16", f"causal_gqa/{impl}", shape, flops, nbytes, t)


def attention_decode(
    inputs: RandomInputs,
    batch: int,
    kv_len: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    repeats: int,
    impl: AttentionImpl = "xla",
) -> dict[str, Any]:
    """One new token per sequence attending to ``kv_len`` cached tokens (a contiguous cache), ``batch``
    sequences, bf16."""
    q_shape, kv_shape = (batch, 1, heads, head_dim), (batch, kv_len, kv_heads, head_dim)
    bf16 = jnp.bfloat16
    sets = _sets(inputs, [(q_shape, bf16, 1.0), (kv_shape, bf16, 1.0), (kv_shape, bf16, 1.0)])
    t = time_jitted(_attention_fn(impl, False), sets, repeats)
    kv_tokens = batch * kv_len
    flops = 4.0 * head_dim * heads * kv_tokens
    nbytes = 2.0 * kv_tokens * kv_heads * head_dim * 2 + 2.0 * batch * heads * head_dim * ACT_BYTES
    shape = {"batch": batch, "kv_len": kv_len, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim}
    return _record("attention_decode", "bf16", f"gqa_decode/{impl}", shape, flops, nbytes, t)


def _add_rmsnorm(x: jax.Array, r: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = x + r
    var = jnp.mean(jnp.square(s.astype(jnp.float32)), axis=-1, keepdims=True)
    return (s * jax.lax.rsqrt(var + 1e-6).astype(s.dtype)), s


def _copy(x: jax.Array) -> jax.Array:
    return x + jnp.asarray(1, x.dtype)


def _silu_mul(g: jax.Array, u: jax.Array) -> jax.Array:
    return jax.nn.silu(g) * u


ELEMENTWISE: dict[str, tuple[Callable[..., Any], int, int]] = {
    "copy": (_copy, 1, 1),  # (fn, arrays read, arrays written)
    "add_rmsnorm": (_add_rmsnorm, 2, 2),
    "silu_mul": (_silu_mul, 2, 1),
}


def elementwise(inputs: RandomInputs, op: str, tokens: int, width: int, repeats: int) -> dict[str, Any]:
    """A memory-bound bf16 op over (tokens x width): ``copy`` (x + 1: a streaming copy, 1 read and 1
    write), ``add_rmsnorm`` (2 reads, 2 writes) or ``silu_mul`` (gate and up: 2 reads, 1 write)."""
    fn, n_in, n_out = ELEMENTWISE[op]
    sets = _sets(inputs, [((tokens, width), jnp.bfloat16, 1.0)] * n_in)
    t = time_jitted(fn, sets, repeats)
    elements = float(tokens * width)
    nbytes = elements * (n_in + n_out) * ACT_BYTES
    return _record("elementwise", "bf16", op, {"tokens": tokens, "width": width}, 4.0 * elements, nbytes, t)


def _psum(v: jax.Array) -> jax.Array:
    return jax.lax.psum(v, "i")  # type: ignore[no-untyped-call, no-any-return]


def _all_to_all(v: jax.Array) -> jax.Array:
    return jax.lax.all_to_all(v, "i", 0, 0, tiled=True)  # type: ignore[no-untyped-call, no-any-return]


def collective(inputs: RandomInputs, op: str, num_elements: int, repeats: int) -> dict[str, Any]:
    """``allreduce`` (psum) or ``all_to_all`` of a bf16 buffer of ``num_elements`` per device, over every
    local device (called only when there are 2 or more); the inputs already lie sharded on the devices.
    ``num_bytes`` is one device's buffer."""
    from jax.sharding import NamedSharding, PartitionSpec

    num_devices = jax.local_device_count()
    per_device = -(-num_elements // num_devices) * num_devices  # all-to-all splits it evenly
    mesh = jax.make_mesh((num_devices,), ("i",))
    spec = PartitionSpec("i")  # type: ignore[no-untyped-call]
    body = _psum if op == "allreduce" else _all_to_all
    fn = jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    sharding = NamedSharding(mesh, spec)
    sets = [
        (jax.device_put(a, sharding),)
        for (a,) in _sets(inputs, [((num_devices * per_device,), jnp.bfloat16, 1.0)])
    ]
    t = time_jitted(fn, sets, repeats)
    shape = {"num_elements": per_device, "num_devices": num_devices}
    name = "psum" if op == "allreduce" else "all_to_all"
    return _record(op, "bf16", name, shape, 0.0, per_device * ACT_BYTES, t)


def dispatch_overhead(inputs: RandomInputs, repeats: int) -> float:
    """Median seconds of a jitted call that does (almost) nothing: host dispatch plus one tiny kernel.

    A kernel timed alone pays it once per call; inside a whole jitted step it is paid once per step,
    so the fit subtracts it from every kernel time."""
    sets = [(inputs.array((8,), jnp.bfloat16),) for _ in range(2)]
    return time_jitted(_copy, sets, max(repeats, 21)).median_s
