"""What the suite measures: model shapes from the catalog, the sizes of each profile, and the cases.

Three size profiles: ``quick`` (tiny shapes, a smoke run in well under a minute on a CPU), ``cpu`` (the
full suite on a CPU backend: small-model shapes a CPU times in minutes) and ``gpu`` (the full suite on an
accelerator: the catalog's models sharded by TP, M up to 8192 tokens, contexts up to 8192). Imports jax,
numpy and the standard library only (the catalog shapes are copied here; a test keeps them equal to
``simulator/model/specs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import jax

from calibration import kernels, steps
from calibration.timing import RandomInputs

Case = tuple[str, str, Callable[[], dict[str, Any]]]  # (section, label, run)
SECTIONS = ("gemm", "attention", "memory", "collectives", "steps")

# Catalog shapes (simulator/model/specs/*.yaml): hidden, MLP and head counts the GEMMs and attention use.
CATALOG: dict[str, dict[str, int]] = {
    "llama-3.1-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                     "num_kv_heads": 8, "head_dim": 128, "vocab_size": 128256},
    "llama-3.1-70b": {"hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
                      "num_kv_heads": 8, "head_dim": 128, "vocab_size": 128256},
    "llama-3.1-405b": {"hidden_size": 16384, "intermediate_size": 53248, "num_attention_heads": 128,
                       "num_kv_heads": 8, "head_dim": 128, "vocab_size": 128256},
    "qwen3-32b": {"hidden_size": 5120, "intermediate_size": 25600, "num_attention_heads": 64,
                  "num_kv_heads": 8, "head_dim": 128, "vocab_size": 151936},
}  # fmt: skip
SMALL = {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_kv_heads": 4,
         "head_dim": 64, "vocab_size": 8192}  # fmt: skip
TINY = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_kv_heads": 2,
        "head_dim": 64, "vocab_size": 1024}  # fmt: skip

L8, L70, L405, Q32 = (CATALOG[k] for k in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen3-32b"))
SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "gemm_m": [1, 16, 256],
        "gemm_models": [(TINY, 1)],
        "attn_heads": [(4, 2, 64), (4, 1, 64)],  # (query heads, KV heads, head_dim) per GPU: GQA 2 and 4
        "prefill_seq": [16, 128],
        "decode": [(1, 64), (16, 512)],
        "elementwise": [(t, 256) for t in (1, 64, 4096)],
        "collective_elements": [1 << 10, 1 << 16],
        "step_model": {**TINY, "num_layers": 2},
        "step_prefill": [16, 64, 256],
        "step_decode": [(1, 64), (8, 256)],
        "repeats": 5,
    },
    "cpu": {
        "gemm_m": [1, 8, 64, 512],
        "gemm_models": [(SMALL, 1), (SMALL, 4), ({**SMALL, "hidden_size": 2048, "head_dim": 128}, 2)],
        "attn_heads": [(16, 4, 64), (8, 1, 64)],
        "prefill_seq": [64, 256, 1024],
        "decode": [(1, 512), (8, 2048), (32, 1024)],
        "elementwise": [(t, 1024) for t in (1, 64, 4096)] + [(1 << 14, 4096)],
        "collective_elements": [1 << k for k in range(10, 23, 4)],
        "step_model": {**SMALL, "num_layers": 4},
        "step_prefill": [32, 128, 512, 1024],
        "step_decode": [(1, 256), (8, 512), (32, 1024), (64, 2048)],
        "repeats": 5,
    },
    "gpu": {
        "gemm_m": [1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
        "gemm_models": [(L8, 1), (L8, 8), (Q32, 2), (L70, 4), (L70, 8), (L405, 8)],
        "attn_heads": [(32, 8, 128), (8, 1, 128), (16, 1, 128)],  # 8B tp1, 70B tp8, 405B tp8: GQA 4, 8, 16
        "prefill_seq": [128, 512, 1024, 2048, 4096, 8192],
        "decode": [(b, n) for b in (1, 8, 32, 128) for n in (512, 2048, 8192)],
        "elementwise": [(t, 4096) for t in (1, 8, 64, 512, 4096, 32768)] + [(1 << 16, 1 << 14)],
        "collective_elements": [1 << k for k in range(10, 29, 3)],
        "step_model": {**L8, "num_layers": 4},
        "step_prefill": [128, 512, 2048, 8192],
        "step_decode": [(1, 1024), (8, 1024), (32, 2048), (128, 2048)],
        "repeats": 20,
    },
}

FP8_DEVICE_KINDS = ("H100", "H200", "H800", "H20", "GH200", "B200", "B300", "GB200", "GB300", "L40", "L4")
FP8_FNUZ_DEVICE_KINDS = ("MI300", "MI325")  # AMD CDNA3: the fnuz fp8 variants; CDNA4 (MI350) uses OCP fp8


def size_profile(quick: bool) -> str:
    """``quick``, or the full suite for the default backend (``cpu`` or ``gpu``)."""
    return "quick" if quick else ("cpu" if jax.default_backend() == "cpu" else "gpu")


def gemm_shapes(model: dict[str, int], tp: int) -> list[tuple[str, int, int]]:
    """(name, n, k) of a layer's four GEMMs with weights sharded ``tp`` ways (column / row parallel)."""
    h, d, inter = model["hidden_size"], model["head_dim"], model["intermediate_size"]
    q, kv = model["num_attention_heads"] // tp, max(1, model["num_kv_heads"] // tp)
    return [
        ("qkv", (q + 2 * kv) * d, h),
        ("o", h, q * d),
        ("gate_up", 2 * inter // tp, h),
        ("down", h, inter // tp),
    ]


def fp8_format() -> tuple[str | None, str]:
    """The fp8 format GEMMs are measured in here (None: none), and why not when none."""
    dev = jax.devices()[0]
    kind = str(getattr(dev, "device_kind", ""))
    if jax.default_backend() == "cpu":
        return None, "cpu backend: no native fp8 matrix units"
    if any(k in kind for k in FP8_FNUZ_DEVICE_KINDS):
        return "e4m3fnuz", ""
    if any(k in kind for k in (*FP8_DEVICE_KINDS, "MI350", "MI355")):
        return "e4m3fn", ""
    return None, f"device {kind!r} is not known to have fp8 matrix units"


def _gemm_cases(sizes: dict[str, Any], inputs: RandomInputs, skipped: list[dict[str, str]]) -> Iterator[Case]:
    fmt, why = fp8_format()
    if fmt is None:
        skipped.append({"what": "gemm fp8", "reason": why})
    dtypes = ["bf16"] if fmt is None else ["bf16", "fp8"]
    seen: set[tuple[int, int]] = set()
    for model, tp in sizes["gemm_models"]:
        for name, n, k in gemm_shapes(model, tp):
            if (n, k) in seen:
                continue
            seen.add((n, k))
            for m in sizes["gemm_m"]:
                for d in dtypes:
                    run = partial(kernels.gemm, inputs, m, n, k, d, sizes["repeats"], fmt or "e4m3fn")
                    yield "gemm", f"gemm {d} {name} m={m} n={n} k={k}", run


def _attention_cases(sizes: dict[str, Any], inputs: RandomInputs) -> Iterator[Case]:
    reps = sizes["repeats"]
    for heads, kvh, hd in sizes["attn_heads"]:
        impl = kernels.attention_impl(heads, kvh, hd)
        for seq in sizes["prefill_seq"]:
            run = partial(kernels.attention_prefill, inputs, 1, seq, heads, kvh, hd, reps, impl)
            yield "attention", f"attention prefill {heads}/{kvh} heads seq={seq}", run
        for batch, kv_len in sizes["decode"]:
            run = partial(kernels.attention_decode, inputs, batch, kv_len, heads, kvh, hd, reps, impl)
            yield "attention", f"attention decode {heads}/{kvh} heads {batch}x{kv_len}", run


def _memory_cases(sizes: dict[str, Any], inputs: RandomInputs) -> Iterator[Case]:
    for op in kernels.ELEMENTWISE:
        for tokens, width in sizes["elementwise"]:
            run = partial(kernels.elementwise, inputs, op, tokens, width, sizes["repeats"])
            yield "memory", f"{op} {tokens}x{width}", run


def _collective_cases(
    sizes: dict[str, Any], inputs: RandomInputs, skipped: list[dict[str, str]]
) -> Iterator[Case]:
    if jax.local_device_count() < 2:
        skipped.append({"what": "collectives", "reason": "one local device: no collective to measure"})
        return
    for op in ("allreduce", "all_to_all"):
        for n in sizes["collective_elements"]:
            run = partial(kernels.collective, inputs, op, n, sizes["repeats"])
            yield "collectives", f"{op} {n} elements", run


def cases(
    sizes: dict[str, Any],
    inputs: RandomInputs,
    skipped: list[dict[str, str]],
    sections: tuple[str, ...] = SECTIONS,
) -> Iterator[Case]:
    """Every case of the chosen ``sections``, kernels first and whole steps last, in the order they run;
    what cannot be measured here is appended to ``skipped`` with the reason."""
    if "gemm" in sections:
        yield from _gemm_cases(sizes, inputs, skipped)
    if "attention" in sections:
        yield from _attention_cases(sizes, inputs)
    if "memory" in sections:
        yield from _memory_cases(sizes, inputs)
    if "collectives" in sections:
        yield from _collective_cases(sizes, inputs, skipped)
    if "steps" in sections:
        yield from _step_cases(sizes, inputs)


def _step_cases(sizes: dict[str, Any], inputs: RandomInputs) -> Iterator[Case]:
    model = sizes["step_model"]
    impl = kernels.attention_impl(model["num_attention_heads"], model["num_kv_heads"], model["head_dim"])
    params = steps.init_params(inputs, model)
    reps = sizes["repeats"]
    for tokens in sizes["step_prefill"]:
        run = partial(steps.time_step, inputs, params, model, "prefill", 1, tokens, tokens, reps, impl)
        yield "steps", f"step prefill {tokens}", run
    for batch, kv_len in sizes["step_decode"]:
        run = partial(steps.time_step, inputs, params, model, "decode", batch, 1, kv_len, reps, impl)
        yield "steps", f"step decode batch={batch} kv={kv_len}", run
