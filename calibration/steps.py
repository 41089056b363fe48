"""Whole steps: a Llama-shaped layer stack with random bf16 weights, timed on prefill chunks and decode
batches, to check the fitted cost model against (imports jax, numpy and the standard library only).

One step = embedding lookup, per layer (RMSNorm, QKV GEMM, RoPE, KV-cache write, GQA attention, O GEMM,
residual + RMSNorm, gate+up GEMM, SiLU x up, down GEMM, residual), final norm, LM head on the tokens
that produce logits (the last prompt token of a prefill; every decoding sequence). Units: seconds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from calibration.kernels import AttentionImpl
from calibration.timing import RandomInputs, time_jitted

Params = dict[str, Any]


def _rmsnorm(x: jax.Array) -> jax.Array:
    var = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(var + 1e-6).astype(x.dtype)


def _rope(x: jax.Array, positions: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    freqs = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
    angles = positions[..., None, None].astype(jnp.float32) * freqs
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def init_params(inputs: RandomInputs, model: dict[str, int]) -> Params:
    """Random weights (scaled by 1/sqrt(fan-in)) for ``model`` (hidden_size, heads, ... as in ModelSpec)."""
    h, d = model["hidden_size"], model["head_dim"]
    nq, nkv, inter = model["num_attention_heads"], model["num_kv_heads"], model["intermediate_size"]
    layers = []
    for _ in range(model["num_layers"]):
        layers.append(
            {
                "wqkv": inputs.array((h, (nq + 2 * nkv) * d), jnp.bfloat16, h**-0.5),
                "wo": inputs.array((nq * d, h), jnp.bfloat16, (nq * d) ** -0.5),
                "wgu": inputs.array((h, 2 * inter), jnp.bfloat16, h**-0.5),
                "wd": inputs.array((inter, h), jnp.bfloat16, inter**-0.5),
            }
        )
    return {
        "embed": inputs.array((model["vocab_size"], h), jnp.bfloat16),
        "lm_head": inputs.array((h, model["vocab_size"]), jnp.bfloat16, h**-0.5),
        "layers": layers,
    }


def _layer(
    p: Params,
    x: jax.Array,
    positions: jax.Array,
    cache: tuple[jax.Array, jax.Array] | None,
    model: dict[str, int],
    impl: AttentionImpl,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """One decoder layer on x (B, T, H). Prefill (``cache`` None): causal attention over the new K, V.
    Decode: attention over ``cache`` (B, L, G, D), whose last slot stands for the new token. The new
    K, V are returned (the cache write: outputs the size of what a paged-cache store writes)."""
    b, t, _ = x.shape
    d, nq, nkv = model["head_dim"], model["num_attention_heads"], model["num_kv_heads"]
    qkv = _rmsnorm(x) @ p["wqkv"]
    q = _rope(qkv[..., : nq * d].reshape(b, t, nq, d), positions)
    k = _rope(qkv[..., nq * d : (nq + nkv) * d].reshape(b, t, nkv, d), positions)
    v = qkv[..., (nq + nkv) * d :].reshape(b, t, nkv, d)
    if cache is None:
        attn = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=impl)
    else:
        attn = jax.nn.dot_product_attention(q, cache[0], cache[1], implementation=impl)
    x = x + attn.reshape(b, t, nq * d) @ p["wo"]
    gate_up = _rmsnorm(x) @ p["wgu"]
    inter = model["intermediate_size"]
    x = x + (jax.nn.silu(gate_up[..., :inter]) * gate_up[..., inter:]) @ p["wd"]
    return x, (k, v)


def step_fn(model: dict[str, int], kind: str, impl: AttentionImpl = "xla") -> Any:
    """A function (params, tokens (B, T), caches) -> (logits, new K and V) for a prefill or decode step,
    attention by ``impl`` (``xla`` or ``cudnn``, as the attention kernels were measured)."""

    def fn(params: Params, tokens: jax.Array, caches: list[tuple[jax.Array, jax.Array]]) -> Any:
        b, t = tokens.shape
        start = 0 if kind == "prefill" else caches[0][0].shape[1] - 1
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32) + start, (b, t))
        x = params["embed"][tokens]
        new_kv = []
        for p, cache in zip(params["layers"], caches, strict=True):
            x, kv = _layer(p, x, positions, None if kind == "prefill" else cache, model, impl)
            new_kv.append(kv)
        logits = _rmsnorm(x[:, -1, :]) @ params["lm_head"]
        return logits, new_kv

    return fn


def time_step(
    inputs: RandomInputs,
    params: Params,
    model: dict[str, int],
    kind: str,
    batch: int,
    tokens: int,
    kv_len: int,
    repeats: int,
    impl: AttentionImpl = "xla",
) -> dict[str, Any]:
    """Median seconds of one step: prefill (1 x ``tokens`` prompt, no cache) or decode (``batch``
    sequences with ``kv_len`` KV tokens each, the new one included). Returns a JSON-able dict."""
    t, length = (tokens, tokens) if kind == "prefill" else (1, kv_len)
    g, d = model["num_kv_heads"], model["head_dim"]

    def caches() -> list[tuple[jax.Array, jax.Array]]:
        shape = (batch, length if kind == "decode" else 1, g, d)
        return [
            (inputs.array(shape, jnp.bfloat16), inputs.array(shape, jnp.bfloat16)) for _ in params["layers"]
        ]

    sets = [(params, inputs.integers(model["vocab_size"], (batch, t)), caches()) for _ in range(2)]
    timing = time_jitted(step_fn(model, kind, impl), sets, repeats)
    return {
        "kind": kind,
        "batch": batch,
        "tokens": t,
        "kv_len": length,
        "time_s": timing.median_s,
        "min_s": timing.min_s,
        "max_s": timing.max_s,
        "repeats": timing.repeats,
        "attention_impl": impl,
    }
