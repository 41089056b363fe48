"""Prompt and output lengths (tokens per request) drawn from a ``LengthSpec`` of the scenario.

================ ====================================================================================
spec             lengths
================ ====================================================================================
int n            all n
uniform          integers uniform on [low, high], both ends included
lognormal        round(X) clipped to [low, high], X ~ LogNormal(mu, sigma) with mu = ln(mean) - sigma^2/2
empirical        resampled with replacement from ``values`` or from a file (one column of integers)
================ ====================================================================================

Log-normal: E[X] = exp(mu + sigma^2/2), so mu = ln(mean) - sigma^2/2 makes the mean of the lengths
equal ``mean`` before rounding and clipping (the standard moment identity, e.g. Johnson, Kotz &
Balakrishnan, *Continuous Univariate Distributions*, vol. 1, ch. 14). Rounding and clipping to
[low, high] move the mean when the bounds cut off much of the distribution. Measured on 2e6 draws
with the default bounds [1, 2e6]: within 0.2 % (sampling noise) for mean >= 100 and sigma <= 2, and
for mean 10 within 0.1 % at sigma <= 1 but +3 % at sigma = 2 (draws below 0.5 are raised to 1).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.config import EmpiricalLengths, LengthSpec, LognormalLengths, UniformLengths
from simulator.errors import ConfigError
from simulator.workload.traces import load_length_values


def sample_lengths(spec: LengthSpec, num: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` token counts (int64, each >= 1) drawn from ``spec`` with ``rng``."""
    if num < 0:
        raise ConfigError("num", num, "the number of lengths to draw must be >= 0")
    if isinstance(spec, bool) or not isinstance(
        spec, int | UniformLengths | LognormalLengths | EmpiricalLengths
    ):
        raise ConfigError("length spec", spec, "an integer or a {dist: uniform|lognormal|empirical} mapping")
    if isinstance(spec, int):
        return np.full(num, spec, dtype=np.int64)
    if isinstance(spec, UniformLengths):
        return rng.integers(spec.low, spec.high, size=num, endpoint=True, dtype=np.int64)
    if isinstance(spec, LognormalLengths):
        return _lognormal(spec, num, rng)
    return _empirical(spec, num, rng)


def _lognormal(spec: LognormalLengths, num: int, rng: np.random.Generator) -> np.ndarray:
    mu = math.log(spec.mean) - spec.sigma**2 / 2.0
    draws = rng.lognormal(mean=mu, sigma=spec.sigma, size=num)
    return np.clip(np.rint(draws), spec.low, spec.high).astype(np.int64)


def _empirical(spec: EmpiricalLengths, num: int, rng: np.random.Generator) -> np.ndarray:
    if spec.values is not None:
        pool = np.asarray(spec.values, dtype=np.int64)
    else:
        assert spec.file is not None  # the config validator guarantees exactly one source
        pool = load_length_values(spec.file, spec.column)
    return pool[rng.integers(0, pool.shape[0], size=num)]
