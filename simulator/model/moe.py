"""Mixture-of-Experts routing statistics: which experts a batch hits, and how unevenly they load GPUs.

Units: tokens, experts, token-expert assignments. Pure numpy, seeded by the caller.

Expert weights read in a step are those of the experts the batch actually hits. With uniform routing
of T tokens, each to k of E experts, an expert is missed by one token with probability 1 - k/E, so::

    E[unique experts hit] = E x (1 - (1 - k/E)^T)          (64 tokens, top-8 of 256: 222.4)

Real routers are skewed. ``route_sample`` draws each token's top-k experts without replacement from
Zipf-like popularities p_e ~ 1 / rank(e)^skew (skew 0: uniform) with the Gumbel top-k trick, ranks
shuffled over experts so hot experts fall on random GPUs. Experts sit on ``num_groups`` expert-parallel
GPUs in contiguous blocks; the slowest GPU (most work) sets the MoE layer's time::

    experts 0..E-1 -> GPU g holds experts [g E/G, (g+1) E/G)
    per GPU: unique experts hit u_g (weight bytes), assignments a_g (FLOPs, activations)
    imbalance = max_g a_g / mean_g a_g

``RoutingProfile`` samples a grid of batch sizes once (per replica build) and interpolates between
them, so the per-step price stays O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLED_TOKENS = tuple(2**i for i in range(13))  # 1 .. 4096 tokens
"""Batch sizes the routing profile samples; beyond the last, loads scale linearly in tokens and every
expert a GPU holds counts as hit (at 4096 tokens x top-k, an expert is missed with probability
(1 - k/E)^4096, under 1e-6 for every catalog model with uniform routing)."""

NUM_DRAWS = 4
"""Routing draws averaged per sampled batch size (the expected slowest GPU, not one draw's)."""


def expected_unique_experts(num_tokens: float, top_k: int, num_experts: int) -> float:
    """E x (1 - (1 - k/E)^T): experts hit at least once by T uniformly routed tokens (top-k of E)."""
    if num_tokens <= 0:
        return 0.0
    return float(num_experts * (1.0 - (1.0 - top_k / num_experts) ** num_tokens))


def expert_popularity(num_experts: int, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Routing weights p_e ~ 1 / rank^skew (sum 1), ranks randomly assigned to experts."""
    ranks = rng.permutation(num_experts) + 1.0
    weights = ranks ** (-skew)
    return np.asarray(weights / weights.sum())


def route_sample(num_tokens: int, top_k: int, popularity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Token counts per expert for ``num_tokens`` tokens, each routed to ``top_k`` distinct experts.

    Gumbel top-k: argmax of log p + Gumbel noise, k times without replacement, is a draw of k experts
    from p without replacement (Kool et al. 2019, arXiv:1903.06059).
    """
    num_experts = popularity.shape[0]
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(num_tokens, num_experts))
    chosen = np.argpartition(-keys, top_k - 1, axis=1)[:, :top_k]
    return np.bincount(chosen.ravel(), minlength=num_experts)


@dataclass(frozen=True, slots=True)
class GroupLoad:
    """The slowest expert-parallel GPU's load for one batch size, and the imbalance."""

    unique_experts: float  # experts the slowest GPU must read weights for
    assignments: float  # token-expert pairs the slowest GPU computes
    imbalance_frac: float  # max / mean assignments over GPUs, minus 1


@dataclass(frozen=True, slots=True)
class RoutingProfile:
    """Sampled slowest-GPU loads on ``SAMPLED_TOKENS``, interpolated linearly between them."""

    tokens: tuple[int, ...]
    loads: tuple[GroupLoad, ...]
    experts_per_group: int

    @classmethod
    def sample(
        cls,
        num_experts: int,
        top_k: int,
        num_groups: int,
        skew: float,
        rng: np.random.Generator,
        group_cost: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> RoutingProfile:
        """Sample the grid. ``group_cost(unique, assignments)`` ranks GPUs (e.g. their roofline time)."""
        popularity = expert_popularity(num_experts, skew, rng)
        per_group = num_experts // num_groups
        loads = []
        for num_tokens in SAMPLED_TOKENS:
            u_sum = a_sum = imb_sum = 0.0
            for _ in range(NUM_DRAWS):
                counts = route_sample(num_tokens, top_k, popularity, rng).reshape(num_groups, per_group)
                unique = (counts > 0).sum(axis=1).astype(float)
                assigned = counts.sum(axis=1).astype(float)
                slowest = int(np.argmax(group_cost(unique, assigned)))
                u_sum += float(unique[slowest])
                a_sum += float(assigned[slowest])
                imb_sum += float(assigned.max() / assigned.mean()) - 1.0
            loads.append(GroupLoad(u_sum / NUM_DRAWS, a_sum / NUM_DRAWS, imb_sum / NUM_DRAWS))
        return cls(SAMPLED_TOKENS, tuple(loads), per_group)

    def at(self, num_tokens: float) -> GroupLoad:
        """The slowest GPU's load for ``num_tokens`` tokens (0 tokens: no load)."""
        if num_tokens <= 0:
            return GroupLoad(0.0, 0.0, 0.0)
        last = self.tokens[-1]
        if num_tokens >= last:
            load = self.loads[-1]
            return GroupLoad(
                float(self.experts_per_group), load.assignments * num_tokens / last, load.imbalance_frac
            )
        i = max(0, math.floor(math.log2(num_tokens)))
        lo, hi = self.tokens[i], self.tokens[min(i + 1, len(self.tokens) - 1)]
        a, b = self.loads[i], self.loads[min(i + 1, len(self.loads) - 1)]
        w = 0.0 if hi == lo else (num_tokens - lo) / (hi - lo)
        return GroupLoad(
            a.unique_experts + w * (b.unique_experts - a.unique_experts),
            a.assignments + w * (b.assignments - a.assignments),
            a.imbalance_frac + w * (b.imbalance_frac - a.imbalance_frac),
        )
