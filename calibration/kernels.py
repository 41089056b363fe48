"""Micro-benchmarks of single kernels: GEMM, attention (prefill, decode), memory-bound ops, all-reduce.

Each function returns measurement dicts (plain JSON data): ``op_class``, ``dtype``, ``op``, the shape,
``flops`` and ``num_bytes`` counted as the simulator counts them (``simulator.model.costs``: 2-byte
activations, weights read once), and ``time_s`` (median). Imports jax, numpy and the standard library
only. Units: FLOPs, bytes, seconds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calibration.timing import Timing, random_array, time_jitted

DTYPES = {"bf16": jnp.bfloat16, "fp16": jnp.float16}
ACT_BYTES = 2.0
NUM_ARG_SETS = 2  # inputs rotated between timed calls, so no call reads what the last one left in cache


def _record(
    op_class: str, dtype: str, op: str, shape: dict[str, int], flops: float, nbytes: float, timing: Timing
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
    }


def gemm(rng: np.random.Generator, m: int, n: int, k: int, dtype: str, repeats: int) -> dict[str, Any]:
    """(m x k) @ (k x n), weights and activations in ``dtype`` (fp8: e4m3 weights and inputs, bf16 out)."""
    if dtype == "fp8":
        in_dtype, w_bytes = jnp.float8_e4m3fn, 1.0

        def fn(x: jax.Array, w: jax.Array) -> jax.Array:
            return jnp.matmul(x, w, preferred_element_type=jnp.bfloat16)
    else:
        in_dtype, w_bytes = DTYPES[dtype], ACT_BYTES

        def fn(x: jax.Array, w: jax.Array) -> jax.Array:
            return jnp.matmul(x, w)

    sets = [
        (random_array(rng, (m, k), in_dtype), random_array(rng, (k, n), in_dtype, k**-0.5))
        for _ in range(NUM_ARG_SETS)
    ]
    t = time_jitted(fn, sets, repeats)
    nbytes = n * k * w_bytes + (m * k + m * n) * ACT_BYTES
    return _record("gemm", dtype, "matmul", {"m": m, "n": n, "k": k}, 2.0 * m * n * k, nbytes, t)


def attention_prefill(
    rng: np.random.Generator, batch: int, seq: int, heads: int, kv_heads: int, head_dim: int, repeats: int
) -> dict[str, Any]:
    """Causal GQA self-attention of ``batch`` prompts of ``seq`` tokens, bf16 (no cache)."""
    q_shape, kv_shape = (batch, seq, heads, head_dim), (batch, seq, kv_heads, head_dim)
    sets = [
        tuple(random_array(rng, s, jnp.bfloat16) for s in (q_shape, kv_shape, kv_shape))
        for _ in range(NUM_ARG_SETS)
    ]

    def fn(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        return jax.nn.dot_product_attention(q, k, v, is_causal=True)

    t = time_jitted(fn, sets, repeats)
    pairs = batch * seq * (seq + 1) / 2.0
    flops = 4.0 * head_dim * heads * pairs
    nbytes = 2.0 * batch * seq * heads * head_dim * ACT_BYTES + 2.0 * batch * seq * kv_heads * head_dim * 2
    shape = {"batch": batch, "seq": seq, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim}
    return _record("attention_prefill", "bf16", "causal_gqa", shape, flops, nbytes, t)


def attention_decode(
    rng: np.random.Generator, batch: int, kv_len: int, heads: int, kv_heads: int, head_dim: int, repeats: int
) -> dict[str, Any]:
    """One new token per sequence attending to ``kv_len`` cached tokens, ``batch`` sequences, bf16."""
    q_shape, kv_shape = (batch, 1, heads, head_dim), (batch, kv_len, kv_heads, head_dim)
    sets = [
        tuple(random_array(rng, s, jnp.bfloat16) for s in (q_shape, kv_shape, kv_shape))
        for _ in range(NUM_ARG_SETS)
    ]

    def fn(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        return jax.nn.dot_product_attention(q, k, v)

    t = time_jitted(fn, sets, repeats)
    kv_tokens = batch * kv_len
    flops = 4.0 * head_dim * heads * kv_tokens
    nbytes = 2.0 * kv_tokens * kv_heads * head_dim * 2 + 2.0 * batch * heads * head_dim * ACT_BYTES
    shape = {"batch": batch, "kv_len": kv_len, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim}
    return _record("attention_decode", "bf16", "gqa_decode", shape, flops, nbytes, t)


def _add_rmsnorm(x: jax.Array, r: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = x + r
    var = jnp.mean(jnp.square(s.astype(jnp.float32)), axis=-1, keepdims=True)
    return (s * jax.lax.rsqrt(var + 1e-6).astype(s.dtype)), s


def elementwise(rng: np.random.Generator, op: str, tokens: int, width: int, repeats: int) -> dict[str, Any]:
    """A memory-bound bf16 op over (tokens x width): ``copy`` (x + 1: 1 read, 1 write), ``add_rmsnorm``
    (2 reads, 2 writes) or ``silu_mul`` (gate and up of width each: 2 reads, 1 write)."""
    n_in = 2 if op in ("add_rmsnorm", "silu_mul") else 1
    n_out = {"copy": 1, "add_rmsnorm": 2, "silu_mul": 1}[op]
    sets = [
        tuple(random_array(rng, (tokens, width), jnp.bfloat16) for _ in range(n_in))
        for _ in range(NUM_ARG_SETS)
    ]
    fns = {
        "copy": lambda x: x + jnp.asarray(1, x.dtype),
        "add_rmsnorm": _add_rmsnorm,
        "silu_mul": lambda g, u: jax.nn.silu(g) * u,
    }
    t = time_jitted(fns[op], sets, repeats)
    elements = float(tokens * width)
    nbytes = elements * (n_in + n_out) * ACT_BYTES
    return _record("elementwise", "bf16", op, {"tokens": tokens, "width": width}, 4.0 * elements, nbytes, t)


def allreduce(rng: np.random.Generator, num_elements: int, repeats: int) -> dict[str, Any]:
    """psum of a bf16 buffer over every local device (only called when there are 2 or more)."""
    num_devices = jax.local_device_count()
    x = [random_array(rng, (num_devices, num_elements), jnp.bfloat16) for _ in range(NUM_ARG_SETS)]
    fn = jax.pmap(lambda v: jax.lax.psum(v, "i"), axis_name="i")
    t = time_jitted(fn, [(a,) for a in x], repeats)
    shape = {"num_elements": num_elements, "num_devices": num_devices}
    return _record("allreduce", "bf16", "psum", shape, 0.0, num_elements * ACT_BYTES, t)


def dispatch_overhead(rng: np.random.Generator, repeats: int) -> float:
    """Median seconds of a jitted call that does (almost) nothing: host dispatch plus one tiny kernel.

    A kernel timed alone pays it once per call; inside a whole jitted step it is paid once per step,
    so the fit subtracts it from every kernel time."""
    sets = [(random_array(rng, (8,), jnp.bfloat16),) for _ in range(NUM_ARG_SETS)]
    return time_jitted(lambda x: x + jnp.asarray(1, x.dtype), sets, max(repeats, 21)).median_s
