"""The measuring half: run the benchmark suite on the default JAX device and write raw JSON.

    python -m calibration.measure --out raw.json [--quick]

Imports jax, numpy and the standard library only (it runs on machines without the simulator's
dependencies). ``run_suite`` takes an optional ``progress(done, total, label)`` callback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from calibration import kernels, steps

Progress = Callable[[int, int, str], None]
Case = tuple[str, Callable[[], dict[str, Any]]]

# Models the suite measures: catalog shapes for GEMMs and attention; the step model is what is timed whole.
LLAMA_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_kv_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
}
LLAMA_70B = {
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_kv_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
}
TINY = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 64,
    "vocab_size": 1024,
}

FP8_DEVICE_KINDS = ("H100", "H200", "H800", "H20", "GH200", "B200", "B300", "GB200", "GB300", "L40", "L4")


def suite_sizes(quick: bool) -> dict[str, Any]:
    """The sizes the suite covers (``quick``: tiny, CPU-friendly)."""
    if quick:
        return {
            "gemm_m": [1, 8, 64, 256],
            "gemm_models": [(TINY, 1)],
            "prefill_seq": [16, 64, 256],
            "decode": [(1, 64), (4, 256), (16, 512)],
            "attn_model": (TINY, 1),
            "elementwise": [(t, 256) for t in (1, 32, 512, 4096)],
            "allreduce_elements": [1 << 10, 1 << 16],
            "step_model": {**TINY, "num_layers": 2},
            "step_prefill": [16, 64, 256],
            "step_decode": [(1, 64), (4, 256), (16, 128)],
            "repeats": 5,
        }
    return {
        "gemm_m": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
        "gemm_models": [(LLAMA_8B, 1), (LLAMA_8B, 2), (LLAMA_8B, 4), (LLAMA_8B, 8), (LLAMA_70B, 8)],
        "prefill_seq": [128, 256, 512, 1024, 2048, 4096, 8192],
        "decode": [(b, n) for b in (1, 8, 32, 128) for n in (512, 2048, 8192)],
        "attn_model": (LLAMA_8B, 1),
        "elementwise": [(t, 4096) for t in (1, 8, 64, 512, 4096, 32768)] + [(1 << 16, 1 << 14)],
        "allreduce_elements": [1 << k for k in range(10, 28, 3)],
        "step_model": {**LLAMA_8B, "num_layers": 4},
        "step_prefill": [128, 512, 2048, 8192],
        "step_decode": [(1, 1024), (8, 1024), (32, 2048), (128, 2048)],
        "repeats": 20,
    }


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


def fp8_support() -> tuple[bool, str]:
    """Whether fp8 GEMMs are measured here, and why not when they are not."""
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", "")
    if dev.platform != "gpu":
        return False, f"{dev.platform} backend: no native fp8 matrix units"
    if not any(k in kind for k in FP8_DEVICE_KINDS):
        return False, f"device {kind!r} is not known to have fp8 tensor cores"
    return True, ""


def _cases(sizes: dict[str, Any], rng: np.random.Generator, skipped: list[dict[str, str]]) -> Iterator[Case]:
    reps = sizes["repeats"]
    fp8_ok, why = fp8_support()
    if not fp8_ok:
        skipped.append({"what": "gemm fp8", "reason": why})
    dtypes = ["bf16", "fp8"] if fp8_ok else ["bf16"]
    for model, tp in sizes["gemm_models"]:
        for name, n, k in gemm_shapes(model, tp):
            for m in sizes["gemm_m"]:
                for dt_ in dtypes:
                    yield (
                        f"gemm {dt_} {name} m={m} n={n} k={k}",
                        (lambda m=m, n=n, k=k, d=dt_: kernels.gemm(rng, m, n, k, d, reps)),
                    )
    amodel, tp = sizes["attn_model"]
    heads, kvh, hd = amodel["num_attention_heads"] // tp, amodel["num_kv_heads"] // tp, amodel["head_dim"]
    for seq in sizes["prefill_seq"]:
        yield (
            f"attention prefill seq={seq}",
            (lambda s=seq: kernels.attention_prefill(rng, 1, s, heads, kvh, hd, reps)),
        )
    for batch, kv_len in sizes["decode"]:
        yield (
            f"attention decode batch={batch} kv={kv_len}",
            (lambda b=batch, n=kv_len: kernels.attention_decode(rng, b, n, heads, kvh, hd, reps)),
        )
    for op in ("copy", "add_rmsnorm", "silu_mul"):
        for tokens, width in sizes["elementwise"]:
            yield (
                f"{op} {tokens}x{width}",
                (lambda o=op, t=tokens, w=width: kernels.elementwise(rng, o, t, w, reps)),
            )
    if jax.local_device_count() > 1:
        for n in sizes["allreduce_elements"]:
            yield f"all-reduce {n} elements", (lambda n=n: kernels.allreduce(rng, n, reps))
    else:
        skipped.append({"what": "allreduce", "reason": "one local device: no collective to measure"})


def _step_cases(sizes: dict[str, Any], rng: np.random.Generator) -> Iterator[Case]:
    model = sizes["step_model"]
    params = steps.init_params(rng, model)
    reps = sizes["repeats"]
    for tokens in sizes["step_prefill"]:
        yield (
            f"step prefill {tokens}",
            (lambda t=tokens: steps.time_step(rng, params, model, "prefill", 1, t, t, reps)),
        )
    for batch, kv_len in sizes["step_decode"]:
        yield (
            f"step decode batch={batch} kv={kv_len}",
            (lambda b=batch, n=kv_len: steps.time_step(rng, params, model, "decode", b, 1, n, reps)),
        )


def device_info() -> dict[str, Any]:
    """The device the suite runs on: name, backend, count, jax version, date (UTC)."""
    dev = jax.devices()[0]
    return {
        "device": str(getattr(dev, "device_kind", dev.platform)),
        "backend": jax.default_backend(),
        "num_local_devices": jax.local_device_count(),
        "jax_version": jax.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def run_suite(quick: bool, seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Run every case; the raw result (device, measurements, steps, skipped) as JSON-able data."""
    sizes = suite_sizes(quick)
    rng = np.random.default_rng(seed)
    skipped: list[dict[str, str]] = []
    kernel_cases = list(_cases(sizes, rng, skipped))
    step_cases = list(_step_cases(sizes, rng))
    total = len(kernel_cases) + len(step_cases)
    dispatch_s = kernels.dispatch_overhead(rng, sizes["repeats"])
    measurements, step_rows = [], []
    for i, (label, run) in enumerate(kernel_cases + step_cases):
        if progress is not None:
            progress(i, total, label)
        (measurements if i < len(kernel_cases) else step_rows).append(run())
    if progress is not None:
        progress(total, total, "done")
    return {
        "schema": "trilemma-calibration-raw/1",
        **device_info(),
        "quick": quick,
        "step_model": sizes["step_model"],
        "dispatch_s": dispatch_s,
        "measurements": measurements,
        "steps": step_rows,
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m calibration.measure --out raw.json [--quick] [--seed N]``."""
    parser = argparse.ArgumentParser(prog="python -m calibration.measure", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="raw measurements JSON to write")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU-friendly)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def show(done: int, total: int, label: str) -> None:
        print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)

    raw = run_suite(args.quick, args.seed, show)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(raw['measurements'])} kernel and {len(raw['steps'])} step measurements to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
