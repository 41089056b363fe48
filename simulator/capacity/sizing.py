"""Replicas for a peak rate (step 5 of the decision framework), two ways, and the larger of the two.

- Little's law: requests in flight L = lambda x W, with lambda the peak rate plus headroom and W the mean
  end-to-end latency; a replica holds ``sustainable_batch`` of them, so replicas = ceil(L / batch).
- The knee: replicas = ceil(lambda / knee rate per replica), the knee measured by ``find_knee``.

The first needs only a latency and the replica's batch capacity; the second includes queueing and the
SLO. Units: rates in requests per second, times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.capacity.knee import saturation_batch
from simulator.errors import ConfigError
from simulator.resolve import ResolvedScenario


def sustainable_batch(resolved: ResolvedScenario, mean_context_tokens: float) -> int:
    """Sequences one replica can run at once: min(B_sat, max_num_seqs, KV tokens / mean context)."""
    kv_tokens = resolved.memory.num_kv_blocks * resolved.memory.block_size
    kv_limit = int(kv_tokens // max(mean_context_tokens, 1.0))
    return max(1, min(saturation_batch(resolved.cost), resolved.scenario.scheduler.max_num_seqs, kv_limit))


@dataclass(frozen=True)
class Sizing:
    """Replicas for a peak rate: by Little's law, by the knee, and the larger of the two."""

    peak_rate_per_s: float
    headroom_frac: float
    target_rate_per_s: float  # peak x (1 + headroom)
    concurrency: float  # target x mean E2E (Little's law): requests in flight
    little_replicas: int
    knee_replicas: int

    @property
    def replicas(self) -> int:
        """The larger of the two estimates."""
        return max(self.little_replicas, self.knee_replicas)


def replicas_needed(
    peak_rate_per_s: float,
    *,
    mean_e2e_s: float,
    sustainable_batch: int,
    knee_rate_per_replica_per_s: float,
    headroom_frac: float = 0.25,
) -> Sizing:
    """L = lambda W over a replica's sustainable batch, and peak over the knee per replica, with headroom."""
    for field, value in (("peak_rate_per_s", peak_rate_per_s), ("mean_e2e_s", mean_e2e_s)):
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(field, value, "a positive, finite number")
    if not knee_rate_per_replica_per_s > 0 or sustainable_batch < 1:
        raise ConfigError("knee_rate_per_replica_per_s", knee_rate_per_replica_per_s, "positive")
    if not 0 <= headroom_frac <= 10:
        raise ConfigError("headroom_frac", headroom_frac, "a fraction >= 0, for example 0.25 for 25 %")
    target = peak_rate_per_s * (1 + headroom_frac)
    concurrency = target * mean_e2e_s
    return Sizing(
        peak_rate_per_s=peak_rate_per_s,
        headroom_frac=headroom_frac,
        target_rate_per_s=target,
        concurrency=concurrency,
        little_replicas=max(1, math.ceil(concurrency / sustainable_batch - 1e-9)),
        knee_replicas=max(1, math.ceil(target / knee_rate_per_replica_per_s - 1e-9)),
    )
