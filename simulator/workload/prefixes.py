"""Shared prompt prefixes: which prefix (system prompt) each request starts with.

``workload.prefix: {num_prefixes, tokens, popularity, zipf_exponent}`` gives every request one of
``num_prefixes`` prefixes of ``tokens`` tokens, drawn uniformly or by a Zipf law over the prefixes'
ranks (P(rank r) proportional to 1 / r^exponent), from the seeded "prefixes" stream. A request's prompt
is its prefix followed by its own ``input_tokens``.
"""

from __future__ import annotations

import numpy as np

from simulator.config import PrefixConfig

# Requests of request class k get prefix ids k * PREFIX_ID_STRIDE + i: classes never share a prefix.
PREFIX_ID_STRIDE = 1 << 20


def sample_prefix_ids(prefix: PrefixConfig, num: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` prefix ids (int32) in [0, num_prefixes)."""
    n = prefix.num_prefixes
    if prefix.popularity == "uniform":
        return rng.integers(0, n, size=num).astype(np.int32)
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** prefix.zipf_exponent
    return rng.choice(n, size=num, p=weights / weights.sum()).astype(np.int32)
