"""Disaggregated prefill/decode pools in the event loop (Splitwise, DistServe).

The router sends every request to a prefill replica (``_Cluster.routable`` is the prefill pool). A
prefill replica runs the scenario's policy on prompts only: when a prompt is computed and its first token
sampled, the sequence is handed off instead of joining the replica's decode set. A handoff waits in one
cluster-wide FIFO queue until a decode replica has KV blocks for it (the one with the most free blocks;
``kv_wait_s``), then its KV crosses the link (``simulator.disaggregation.KVTransfer``: each replica's link
carries one transfer at a time, so transfers queue behind each other) and lands on the decode replica,
which adds it to its decode set at its next plan. The prefill replica holds the request's blocks until
the KV has landed. The transfer therefore delays the request's second token, not its first.

Decode replicas only decode, except a sequence they preempt, which they recompute (or swap) themselves.
In fast mode they decode in runs (``simulator.engine.decode_run``) while no handoff is waiting: a
landing cuts the run of its target at the step in progress, a placement first brings every decoder's
occupancy up to now (``ActiveRun.sync_kv``) and cuts the run of the one whose blocks it takes, and a
handoff that must wait cuts every run (it is retried after every decode step, as step by step).
Prefill replicas step one event per step. Replicas are numbered prefill first; ``RunRecords.transfers``
holds the per-request handoff times.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from simulator.disaggregation import ResolvedPool, ResolvedPools, pick_decode_replica
from simulator.engine.clock import Environment, Late
from simulator.engine.decode_run import RunPlanner
from simulator.engine.loop import _Cluster
from simulator.engine.records import RunRecords, TransferLog
from simulator.engine.waits import wait_for_run
from simulator.errors import SimulatorError
from simulator.kv_cache import BlockManager
from simulator.resolve import ResolvedScenario
from simulator.scheduling.policies import DECODE_RUN_POLICIES
from simulator.scheduling.sequence import SeqStatus, Sequence
from simulator.scheduling.state import ReplicaState, apply_step
from simulator.workload import RequestTable


@dataclass(slots=True)
class _Handoff:
    """A sequence whose prompt is done on ``source``, waiting for a decode replica's blocks."""

    seq: Sequence
    source: ReplicaState
    ready_s: float


class _Pools:
    """The pools' extra state: handoffs waiting for blocks, transfers in flight, links' free times."""

    def __init__(self, cluster: _Cluster, pools: ResolvedPools) -> None:
        self.cluster = cluster
        self.pools = pools
        self.transfer = pools.transfer
        limits = cluster.replicas[0].limits
        block_size = cluster.resolved.scenario.scheduler.block_size
        caching = any(r.kv.prefixes is not None for r in cluster.replicas)
        cluster.replicas = [  # prefix caching on the prefill pool only: decode replicas get whole KV
            ReplicaState(
                i,
                BlockManager(pool.memory.num_kv_blocks, block_size, caching and pool.name == "prefill"),
                limits,
            )
            for pool in pools.pools
            for i in pool.replica_indices
        ]
        cluster.wakeups = [None] * len(cluster.replicas)
        cluster.routable = cluster.replicas[: pools.prefill.num_replicas]
        self.decoders = cluster.replicas[pools.decode.first_replica :]
        self.pending: deque[_Handoff] = deque()
        self.landed: list[list[Sequence]] = [[] for _ in cluster.replicas]
        self.num_incoming = [0] * len(cluster.replicas)  # transfers placed on a decode replica, not landed
        self.num_outgoing = [0] * len(cluster.replicas)  # handoffs of a prefill replica, not landed
        self.link_free_s = [0.0] * len(cluster.replicas)
        self.log = TransferLog.empty(len(cluster.log.arrival_s))

    def hand_off(self, seq: Sequence, source: ReplicaState) -> None:
        """A prompt is done and its first token sampled: queue the sequence for a decode replica."""
        self.log.prefill_replica[seq.request_id] = source.index
        self.num_outgoing[source.index] += 1
        self.pending.append(_Handoff(seq, source, self.cluster.env.now))
        self.place()

    def place(self) -> None:
        """Start the transfers of queued handoffs, FCFS, while a decode replica has blocks for the head."""
        env = self.cluster.env
        active_runs = self.cluster.active_runs
        while self.pending:
            self.cluster.sync_kv(self.decoders)  # occupancy as of now, also on replicas in a decode run
            handoff = self.pending[0]
            target = pick_decode_replica(self.decoders, handoff.seq.num_computed_tokens, self.num_incoming)
            if target is None:  # it waits, retried after every decode step: no decode runs meanwhile
                for decoder in self.decoders:
                    active = active_runs[decoder.index]
                    if active is not None:
                        active.cut(env)
                return
            self.pending.popleft()
            seq, source = handoff.seq, handoff.source
            num_blocks = target.kv.blocks_for(seq.num_computed_tokens)
            target.kv.allocate(num_blocks)
            active = active_runs[target.index]
            if active is not None:  # its next steps see fewer free blocks: the run ends with this step
                active.cut(env)
            self.num_incoming[target.index] += 1
            start_s = max(env.now, self.link_free_s[source.index], self.link_free_s[target.index])
            sent_s = start_s + self.transfer.busy_s(seq.num_computed_tokens)
            self.link_free_s[source.index] = self.link_free_s[target.index] = sent_s
            land_s = sent_s + self.transfer.latency_s
            self.log.kv_wait_s[seq.request_id] = env.now - handoff.ready_s
            self.log.kv_transfer_s[seq.request_id] = land_s - env.now
            landing = env.timeout_at(land_s)
            landing.callbacks.append(_Landing(self, seq, source, target, num_blocks))


@dataclass(slots=True)
class _Landing:
    """The KV of ``seq`` has arrived: the prefill replica frees its blocks, the decode replica takes it."""

    pools: _Pools
    seq: Sequence
    source: ReplicaState
    target: ReplicaState
    num_blocks: int

    def __call__(self, _event: simpy.Event) -> None:
        pools, seq = self.pools, self.seq
        self.source.release(seq)
        seq.num_blocks = self.num_blocks
        seq.replica = self.target.index
        pools.num_incoming[self.target.index] -= 1
        pools.num_outgoing[self.source.index] -= 1
        pools.landed[self.target.index].append(seq)
        pools.cluster.wake(self.source.index)
        pools.cluster.wake(self.target.index)


def _sleep(cluster: _Cluster, state: ReplicaState) -> Generator[simpy.Event, Any, None]:
    wakeup = cluster.env.event()
    cluster.wakeups[state.index] = wakeup
    yield wakeup


def _replica(
    pools: _Pools, pool: ResolvedPool, state: ReplicaState, prefill: bool
) -> Generator[simpy.Event, Any, None]:
    """Step one replica of ``pool``: prompts only (handing them off) or decodes of landed sequences."""
    cluster = pools.cluster
    env = cluster.env
    policy = cluster.resolved.policy
    overhead_s = cluster.resolved.scenario.scheduler.step_overhead_s
    swap_s_per_token = pool.memory.kv_bytes_per_token_per_gpu / pool.hardware.host_link_bandwidth_bytes_per_s
    landed = pools.landed[state.index]
    sched = cluster.resolved.scenario.scheduler
    decode_runs = not prefill and sched.fast_mode and sched.policy in DECODE_RUN_POLICIES
    planner = RunPlanner(pool.cost, overhead_s, cluster.compiled)
    preempted_unlogged = 0
    while True:
        while not state.has_work and not landed:  # a landing wakes its prefill replica too
            yield from _sleep(cluster, state)
        if env.peek() <= env.now:  # others are due at this instant: let them act first
            yield Late(env)
        for seq in landed:
            state.decode.add(seq)
        landed.clear()
        state.now_s = env.now
        plan = policy(state)
        if plan.is_empty:
            # blocks held by handoffs from here, or reserved for transfers to here: wait for a landing
            if pools.num_outgoing[state.index] or pools.num_incoming[state.index]:
                # decoders preempted for an urgent prompt that still does not fit: they are counted in
                # the replica's next logged step, which computes no decode run
                preempted_unlogged += len(plan.preempted)
                yield from _sleep(cluster, state)
                continue
            raise SimulatorError(
                f"replica {state.index}: policy planned an empty step with {len(state.waiting)} requests "
                f"waiting and {state.kv.num_free_blocks} free KV blocks"
            )
        if (
            decode_runs
            and not pools.pending
            and plan.decode
            and not plan.prefills
            and not plan.preempted
            and not preempted_unlogged
        ):
            run = planner.plan(state, env.now)
            if run is not None:
                planner.ended(run, cut=(yield from wait_for_run(cluster, state, run)))
                pools.place()  # finished sequences freed blocks
                continue
        planner.restart()
        cost = pool.cost.step(plan.shape())
        duration_s = cost.time_s + overhead_s + state.swap_tokens * swap_s_per_token
        state.swap_tokens = 0
        preempted = len(plan.preempted) + preempted_unlogged
        cluster.steps.add(state.index, env.now, duration_s, plan, preempted, state.kv.num_used_blocks, cost)
        preempted_unlogged = 0
        yield env.timeout(duration_s)
        outcome = apply_step(state, plan, env.now)
        for gap_s, count in outcome.itl_groups:
            cluster.itl.gap_s.append(gap_s)
            cluster.itl.count.append(count)
        for seq in outcome.finished:
            cluster.finish(seq)
        if prefill:
            for seq in list(state.decode.members):
                state.decode.remove(seq)
                pools.hand_off(seq, state)
        else:
            pools.place()  # finished sequences freed blocks


def run_pools(resolved: ResolvedScenario, requests: RequestTable) -> RunRecords:
    """Play ``requests`` through the prefill and decode pools until each finishes or is rejected."""
    assert resolved.pools is not None
    env = Environment()
    cluster = _Cluster(env, resolved, requests)
    pools = _Pools(cluster, resolved.pools)
    for pool, prefill in ((resolved.pools.prefill, True), (resolved.pools.decode, False)):
        for index in pool.replica_indices:
            env.process(_replica(pools, pool, cluster.replicas[index], prefill))
    cluster.start_traffic(requests)
    env.run()
    for state in cluster.replicas:
        left = [s for s in state.running() if s.status is not SeqStatus.FINISHED] + list(state.waiting)
        if left or pools.landed[state.index]:  # only an engine bug leaves work behind
            raise SimulatorError(f"requests were left on replica {state.index} at the end of the run")
    if pools.pending:
        raise SimulatorError(f"{len(pools.pending)} KV handoffs found no decode replica")
    return cluster.records(
        transfers=pools.log, kv_blocks_by_replica=[s.kv.num_blocks for s in cluster.replicas]
    )
