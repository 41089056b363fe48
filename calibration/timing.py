"""Timing of one jitted JAX function: compile outside the timed region, warm up, rotate inputs, median.

Imports jax, numpy and the standard library only. Units: seconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Timing:
    """Median and spread of ``repeats`` timed calls."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int


def random_array(rng: np.random.Generator, shape: Sequence[int], dtype: Any, scale: float = 1.0) -> jax.Array:
    """Random non-zero normal data (|x| >= 1e-3 of scale) of ``shape`` in ``dtype``, on the default device."""
    x = rng.standard_normal(tuple(shape), dtype=np.float32) * scale
    x = np.where(np.abs(x) < 1e-3 * scale, 1e-3 * scale, x)
    return jnp.asarray(x, dtype=dtype)


def time_jitted(
    fn: Callable[..., Any],
    arg_sets: Sequence[Sequence[Any]],
    repeats: int,
    warmup: int = 2,
    min_time_s: float = 0.0,
) -> Timing:
    """Time ``fn`` (not yet jitted) on rotating ``arg_sets``: the compile is done first, untimed.

    Each timed call ends with ``block_until_ready``; ``repeats`` calls are timed (more when
    ``min_time_s`` has not passed yet, at most 4x), the median is reported.
    """
    compiled = jax.jit(fn).lower(*arg_sets[0]).compile()
    for i in range(max(warmup, len(arg_sets))):
        jax.block_until_ready(compiled(*arg_sets[i % len(arg_sets)]))
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time_s and len(times) < 4 * repeats):
        args = arg_sets[len(times) % len(arg_sets)]
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), min(times), max(times), len(times))
