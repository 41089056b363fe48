"""Routers: plain functions ``(RouterContext, replicas, sequence) -> replica index``, registered by name.

A router sees every replica's state at the moment a request arrives and picks one. State a router
keeps between calls (a round-robin counter, a random stream) lives in the ``RouterContext`` the engine
creates for the run, never at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field

import numpy as np

from simulator.errors import UnknownNameError
from simulator.scheduling.sequence import Sequence
from simulator.scheduling.state import ReplicaState


@dataclass(slots=True)
class RouterContext:
    """Per-run router state: a counter and the seeded "routing" random stream."""

    rng: np.random.Generator
    counter: int = 0
    homes: dict[int, int] = field(default_factory=dict)  # prefix_affinity: prefix id -> its replica


Router = Callable[[RouterContext, SequenceOf[ReplicaState], Sequence], int]


def round_robin(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """Replicas in turn, whatever their load."""
    index = ctx.counter % len(replicas)
    ctx.counter += 1
    return index


def _least_loaded(ctx: RouterContext, loads: list[float]) -> int:
    """The index of the smallest load; ties go round-robin (the context's counter)."""
    low = min(loads)
    tied = [i for i, load in enumerate(loads) if load == low]
    index = tied[ctx.counter % len(tied)]
    ctx.counter += 1
    return index


def least_outstanding(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """The replica with the fewest requests waiting or running; ties go round-robin."""
    return _least_loaded(ctx, [r.num_outstanding for r in replicas])


def random_router(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """A replica drawn uniformly from the seeded "routing" stream."""
    return int(ctx.rng.integers(len(replicas)))


def least_kv(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """The replica with the smallest fraction of KV blocks in use; ties go round-robin."""
    return _least_loaded(ctx, [r.kv.num_used_blocks / r.kv.num_blocks for r in replicas])


def power_of_two(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """Two replicas drawn at random; the one with fewer outstanding requests (the first on a tie)."""
    if len(replicas) == 1:
        return 0
    a, b = (int(x) for x in ctx.rng.choice(len(replicas), size=2, replace=False))
    return b if replicas[b].num_outstanding < replicas[a].num_outstanding else a


def prefix_affinity(ctx: RouterContext, replicas: SequenceOf[ReplicaState], seq: Sequence) -> int:
    """Send a prefix where it went before (its KV is likely cached there), unless that replica is
    overloaded (more than twice the least loaded replica's outstanding requests, plus 4); otherwise,
    and for requests without a prefix, the least outstanding replica, which becomes the prefix's home.
    """
    home = ctx.homes.get(seq.prefix_id) if seq.prefix_id >= 0 else None
    if home is not None:
        low = min(r.num_outstanding for r in replicas)
        if replicas[home].num_outstanding <= 2 * low + 4:
            return home
    index = least_outstanding(ctx, replicas, seq)
    if seq.prefix_id >= 0:
        ctx.homes[seq.prefix_id] = index
    return index


ROUTERS: dict[str, Router] = {
    "round_robin": round_robin,
    "least_outstanding": least_outstanding,
    "random": random_router,
    "least_kv": least_kv,
    "power_of_two": power_of_two,
    "prefix_affinity": prefix_affinity,
}


# Routers that read replicas' KV occupancy. The engine's decode runs allocate a run's blocks when the run
# is applied, so before these routers read, it allocates the blocks of the steps begun so far.
KV_AWARE_ROUTERS = frozenset({"least_kv"})


def get_router(name: str) -> Router:
    """The router registered as ``name``; an unknown name lists the known ones."""
    try:
        return ROUTERS[name]
    except KeyError:
        raise UnknownNameError("scheduler.router", name, ROUTERS) from None
