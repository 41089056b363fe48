"""Timing of one jitted JAX function: compile outside the timed region, warm up, rotate inputs, median.

Inputs are random normal data drawn on the device (never zeros: zeros can run faster than real data),
and enough input sets are rotated between timed calls that together they exceed the device's last-level
cache (``rotate_bytes``), so no call reads what the previous one left there. Imports jax, numpy and the
standard library only. Units: seconds, bytes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

MIN_ARG_SETS = 2
MAX_ARG_SETS = 32
# Bytes the rotated input sets should span together: over the H100's 50 MB / H200's 60 MB L2 and the
# MI300X's 256 MB Infinity Cache on GPUs; over a server CPU's L3 on CPUs.
ROTATE_BYTES = {"gpu": 512 * 2**20, "cpu": 96 * 2**20}


@dataclass(frozen=True)
class Timing:
    """Median and spread of ``repeats`` timed calls, over ``num_arg_sets`` rotated input sets."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    num_arg_sets: int


def rotate_bytes() -> int:
    """The bytes the rotated input sets should span on the default backend."""
    return ROTATE_BYTES["cpu" if jax.default_backend() == "cpu" else "gpu"]


def num_arg_sets(bytes_per_set: float) -> int:
    """How many input sets to rotate so that together they exceed the cache (2 to MAX_ARG_SETS)."""
    wanted = math.ceil(rotate_bytes() / max(bytes_per_set, 1.0))
    return max(MIN_ARG_SETS, min(MAX_ARG_SETS, wanted))


# Bit layouts (exponent bits, mantissa bits, exponent bias) of the formats the suite draws inputs in.
_FORMATS: dict[str, tuple[int, int, int]] = {
    "bfloat16": (8, 7, 127),
    "float16": (5, 10, 15),
    "float8_e4m3fn": (4, 3, 7),
    "float8_e4m3fnuz": (4, 3, 8),
}


class RandomInputs:
    """Random non-zero arrays for the benchmarks, without compiling anything per shape.

    Each format has a host pool of random bit patterns (random sign and mantissa, exponent within 4
    binades of the requested scale: never zero, inf or NaN); an array is a slice of the pool at a random
    offset (the pool repeated when the array is larger), put on the default device. Drawing with
    ``jax.random`` would compile one kernel per shape, which on a CPU costs more than the benchmark.
    """

    def __init__(self, seed: int, pool_elements: int = 1 << 24) -> None:
        self.rng = np.random.default_rng(seed)
        self._pool_elements = pool_elements
        self._pools: dict[tuple[str, int], np.ndarray] = {}

    def _pool(self, name: str, shift: int) -> np.ndarray:
        key = (name, shift)
        if key not in self._pools:
            exp_bits, man_bits, bias = _FORMATS[name]
            width = 1 + exp_bits + man_bits
            uint = np.uint16 if width == 16 else np.uint8
            n = self._pool_elements
            exponent = np.clip(bias + shift + self.rng.integers(-3, 1, n), 1, (1 << exp_bits) - 2)
            mantissa = self.rng.integers(0, 1 << man_bits, n)
            sign = self.rng.integers(0, 2, n) << (width - 1)
            self._pools[key] = (sign | (exponent << man_bits) | mantissa).astype(uint)
        return self._pools[key]

    def array(self, shape: Sequence[int], dtype: Any, scale: float = 1.0) -> jax.Array:
        """Random data of ``shape`` in ``dtype`` (bf16, fp16 or an fp8 format), magnitudes ~ ``scale``."""
        np_dtype = np.dtype(dtype)
        pool = self._pool(np_dtype.name, round(math.log2(scale)))
        n = int(np.prod(shape))
        start = int(self.rng.integers(0, len(pool)))
        bits = np.resize(np.roll(pool, -start), n) if n > len(pool) - start else pool[start : start + n]
        out: jax.Array = jax.device_put(bits.view(np_dtype).reshape(tuple(shape)))
        return out

    def integers(self, high: int, shape: Sequence[int]) -> jax.Array:
        """Random int32 in [0, high) (token ids)."""
        out: jax.Array = jax.device_put(self.rng.integers(0, high, tuple(shape)).astype(np.int32))
        return out


def time_jitted(
    fn: Callable[..., Any],
    arg_sets: Sequence[Sequence[Any]],
    repeats: int,
    warmup: int = 2,
    min_time_s: float = 0.0,
) -> Timing:
    """Time ``fn`` (not yet jitted) on rotating ``arg_sets``: the compile is done first, untimed.

    ``warmup`` calls run untimed (runtime caches, lazy allocations; not the data, which should be cold),
    then ``repeats`` calls are timed, each ending with ``block_until_ready`` (more when ``min_time_s``
    has not passed yet, at most 4x); the median is reported.
    """
    compiled = jax.jit(fn).lower(*arg_sets[0]).compile()
    for i in range(warmup):
        jax.block_until_ready(compiled(*arg_sets[i % len(arg_sets)]))  # type: ignore[no-untyped-call]
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time_s and len(times) < 4 * repeats):
        args = arg_sets[len(times) % len(arg_sets)]
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))  # type: ignore[no-untyped-call]
        times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), min(times), max(times), len(times), len(arg_sets))
