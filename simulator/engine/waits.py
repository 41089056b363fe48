"""How a replica process waits (L4): for a static batch to fill, and for a decode run to end or be cut.

A decode run (``simulator.engine.decode_run``) is waited out in one event. A request routed to the
replica meanwhile calls ``ActiveRun.cut``, which moves that event to the end of the step in progress
(``Environment.reschedule``); a KV-aware router first calls ``ActiveRun.sync_kv`` on every replica in a
run, so the occupancy it reads is the step-by-step loop's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from simulator.engine.clock import Environment
from simulator.engine.decode_run import DecodeRun, apply_decode_run
from simulator.kv_cache import BlockManager
from simulator.scheduling.state import ReplicaState

if TYPE_CHECKING:
    from simulator.engine.loop import _Cluster as Cluster


def wait_for_batch(
    cluster: Cluster, state: ReplicaState, until_s: float
) -> Generator[simpy.Event, Any, None]:
    """Sleep until ``until_s`` or until a request is routed here, whichever comes first."""
    env = cluster.env
    arrival = env.event()
    cluster.wakeups[state.index] = arrival
    yield env.timeout_at(max(until_s, env.now)) | arrival
    if not arrival.triggered:
        cluster.wakeups[state.index] = None


class ActiveRun:
    """A decode run in progress on a replica: the event that ends it, and how many steps it keeps."""

    __slots__ = ("allocated", "kv", "num_steps", "run", "wake")

    def __init__(self, run: DecodeRun, wake: simpy.Event, kv: BlockManager) -> None:
        self.run, self.wake, self.num_steps, self.kv = run, wake, run.num_steps, kv
        self.allocated = 0  # blocks of the run's steps allocated ahead of its end (sync_kv)

    def sync_kv(self, now_s: float) -> None:
        """Allocate the blocks of the steps begun by ``now_s``, as the step-by-step loop would have:
        something is about to read (or change) the replica's occupancy; the rest comes when it is applied."""
        run = self.run
        due = run.kv_used_after(min(run.steps_begun_by(now_s), self.num_steps)) - run.start_used_blocks
        if due > self.allocated:
            self.kv.allocate(due - self.allocated)
            self.allocated = due

    def cut(self, env: Environment) -> None:
        """A request was routed here: the run ends with the step in progress now."""
        num_steps = self.run.steps_begun_by(env.now)
        if num_steps < self.num_steps:
            self.num_steps = num_steps
            env.reschedule(self.wake, self.run.end_of(num_steps))


def wait_for_run(cluster: Cluster, state: ReplicaState, run: DecodeRun) -> Generator[simpy.Event, Any, bool]:
    """Wait for the run's end, or, when a request is routed here meanwhile, for the end of the step in
    progress at its arrival (``ActiveRun.cut``); apply the steps that ended. Returns whether it was cut."""
    env = cluster.env
    active = ActiveRun(run, env.timeout_at(run.end_of(run.num_steps)), state.kv)
    cluster.active_runs[state.index] = active
    yield active.wake
    cluster.active_runs[state.index] = None
    for seq in apply_decode_run(state, run, active.num_steps, cluster.steps, cluster.itl, active.allocated):
        cluster.finish(seq)
    return active.num_steps < run.num_steps
