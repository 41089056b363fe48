"""The SimPy event loop: an arrival process, a router, and one process per data-parallel replica.

A replica process repeats: ask its batching policy for a plan, price the plan with the cost model
(plus the scheduler's per-step CPU overhead), wait that long, apply the step. With nothing to do it
waits on an event the arrival side triggers. Open-loop workloads issue requests at their arrival
times; the closed loop (``arrival = concurrency``) issues the next request when one finishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import simpy

from simulator.engine.clock import Environment, Late
from simulator.engine.compiled import run_compiled, use_compiled_engine
from simulator.engine.decode_run import CompiledPricing, RunPlanner
from simulator.engine.records import (
    STATUS_FINISHED,
    STATUS_REJECTED,
    ItlLog,
    RequestLog,
    RunRecords,
    StepLog,
)
from simulator.engine.waits import ActiveRun, wait_for_batch, wait_for_run
from simulator.errors import ConfigError, SimulatorError
from simulator.kv_cache import BlockManager
from simulator.resolve import ResolvedScenario, rejection_reasons
from simulator.rng import stream
from simulator.scheduling.policies import DECODE_RUN_POLICIES
from simulator.scheduling.routers import KV_AWARE_ROUTERS, RouterContext
from simulator.scheduling.sequence import SeqStatus, Sequence
from simulator.scheduling.state import ReplicaLimits, ReplicaState, apply_step
from simulator.workload import RequestTable


class _Cluster:
    """One run's mutable world: replicas, their wake-up events, the logs."""

    def __init__(self, env: Environment, resolved: ResolvedScenario, requests: RequestTable) -> None:
        sched = resolved.scenario.scheduler
        prioritized = len(set(requests.class_priorities)) > 1
        limits = ReplicaLimits(
            sched.max_num_seqs,
            sched.max_num_batched_tokens,
            sched.chunk_size,
            sched.batch_wait_s,
            priority_preemption=prioritized and sched.priority_preemption,
            swap=sched.preemption_mode == "swap",
        )
        self.env = env
        self.resolved = resolved
        caching = sched.prefix_caching and requests.prefix_id is not None
        self.replicas = [
            ReplicaState(i, BlockManager(resolved.memory.num_kv_blocks, sched.block_size, caching), limits)
            for i in range(resolved.num_replicas)
        ]
        self.prefix_id = None if requests.prefix_id is None else requests.prefix_id.tolist()
        self.prefix_tokens = None if requests.prefix_tokens is None else requests.prefix_tokens.tolist()
        self.wakeups: list[simpy.Event | None] = [None] * len(self.replicas)
        self.active_runs: list[ActiveRun | None] = [None] * len(self.replicas)
        self.compiled = CompiledPricing()  # when decode runs switch to the compiled kernel
        self.router_ctx = RouterContext(rng=stream(resolved.scenario.seed, "routing"))
        self.kv_aware_router = sched.router in KV_AWARE_ROUTERS
        self.log = RequestLog.empty(requests.arrival_s, requests.input_tokens, requests.output_tokens)
        self.log.class_id = requests.class_id
        self.log.class_names = requests.class_names
        self.priorities = (
            None
            if requests.class_id is None or not prioritized
            else [requests.class_priorities[k] for k in requests.class_id.tolist()]
        )
        self.reasons = rejection_reasons(resolved, requests)
        self.steps = StepLog()
        self.itl = ItlLog()
        self.closed_loop = requests.closed_loop_clients is not None
        # Open loop: when the next request is due (inf when none is); the closed loop cannot know.
        self.next_arrival_s = math.inf
        self.next_request = 0
        # The replicas the router may pick (None: all); an autoscaler (engine/autoscale.py) narrows it.
        self.routable: list[ReplicaState] | None = None
        # Multi-turn sessions: a session's next turn is issued think_s after the turn before it ends
        self.next_turn = None if requests.next_turn is None else requests.next_turn.tolist()
        self.think_s = None if requests.think_s is None else requests.think_s.tolist()
        follow_up = requests.is_follow_up
        self.follow_up = None if follow_up is None else follow_up.tolist()

    def records(self, **extra: Any) -> RunRecords:
        """What the run recorded (call once the environment has run out of events); ``extra``: more
        ``RunRecords`` fields (the disaggregated pools' transfers)."""
        replicas = self.replicas
        return RunRecords(
            requests=self.log,
            steps=self.steps,
            itl=self.itl,
            num_replicas=len(replicas),
            num_kv_blocks=self.resolved.memory.num_kv_blocks,
            kv_peak_used_blocks=[s.kv.peak_used_blocks for s in replicas],
            prefix_tokens=sum(s.kv.prefixes.num_prefix_tokens for s in replicas if s.kv.prefixes),
            prefix_hit_tokens=sum(s.kv.prefixes.num_hit_tokens for s in replicas if s.kv.prefixes),
            end_s=float(self.env.now),
            **extra,
        )

    def start_traffic(self, requests: RequestTable) -> None:
        """Issue the first requests: the closed loop's clients at once, or start the arrival process."""
        if self.closed_loop:
            assert requests.closed_loop_clients is not None
            for _ in range(min(requests.closed_loop_clients, len(requests))):
                self.issue_next()
        else:
            self.env.process(_arrivals(self, requests))

    def submit(self, request_id: int) -> None:
        """Issue one request now: reject it with its reason, or route it to a replica."""
        log = self.log
        now = self.env.now
        if self.closed_loop:
            log.arrival_s[request_id] = now
        reason = self.reasons[request_id]
        if reason:
            log.status[request_id] = STATUS_REJECTED
            log.reject_reason[request_id] = reason
            if self.next_turn is not None:  # its later turns are longer still: rejected in turn
                self.issue_next_turn(request_id, think=False)
            return
        seq = Sequence(request_id, now, int(log.input_tokens[request_id]), int(log.output_tokens[request_id]))
        if self.next_turn is not None:
            seq.cache_history = self.next_turn[request_id] >= 0
        if self.priorities is not None:
            seq.priority = self.priorities[request_id]
        if self.prefix_id is not None and self.prefix_tokens is not None:
            seq.prefix_id = self.prefix_id[request_id]
            seq.prefix_tokens = self.prefix_tokens[request_id]
        if self.kv_aware_router:
            self.sync_kv(self.replicas)
        candidates = self.replicas if self.routable is None else self.routable
        index = candidates[self.resolved.router(self.router_ctx, candidates, seq)].index
        self.replicas[index].enqueue(seq)
        self.wake(index)

    def wake(self, index: int) -> None:
        """Replica ``index`` has new work: wake it if it sleeps, end its decode run with the current step."""
        active = self.active_runs[index]
        if active is not None:
            active.cut(self.env)
        wakeup = self.wakeups[index]
        if wakeup is not None:
            self.wakeups[index] = None
            wakeup.succeed()

    def sync_kv(self, replicas: list[ReplicaState]) -> None:
        """Bring the KV occupancy of those of ``replicas`` in a decode run up to now (before reading it)."""
        for state in replicas:
            active = self.active_runs[state.index]
            if active is not None:
                active.sync_kv(self.env.now)

    def issue_next(self) -> None:
        """Closed loop: a client whose request ended sends its next one (again at once if rejected)."""
        status = self.log.status
        while self.next_request < len(status):
            request_id = self.next_request
            self.next_request += 1
            self.submit(request_id)
            if status[request_id] != STATUS_REJECTED:
                return

    def finish(self, seq: Sequence) -> None:
        """Record a finished request (and, in the closed loop, issue the next)."""
        i = seq.request_id
        log = self.log
        log.first_token_s[i] = seq.first_token_s
        log.finish_s[i] = seq.finish_s
        log.replica[i] = seq.replica
        log.num_preemptions[i] = seq.num_preemptions
        log.status[i] = STATUS_FINISHED
        if self.closed_loop:
            self.issue_next()
        if self.next_turn is not None:
            self.issue_next_turn(i, think=True)

    def issue_next_turn(self, request_id: int, think: bool) -> None:
        """Sessions: issue the next turn of ``request_id``'s session after its think time (or now)."""
        assert self.next_turn is not None and self.think_s is not None
        turn = self.next_turn[request_id]
        if turn < 0:
            return
        event = self.env.timeout(self.think_s[turn] if think else 0.0)
        event.callbacks.append(lambda _: self._issue_turn(turn))

    def _issue_turn(self, request_id: int) -> None:
        self.log.arrival_s[request_id] = self.env.now
        self.submit(request_id)


def _arrivals(cluster: _Cluster, requests: RequestTable) -> Generator[simpy.Event, Any, None]:
    """Open loop: issue each request at its arrival time."""
    env = cluster.env
    follow_up = cluster.follow_up
    for request_id, arrival_s in enumerate(requests.arrival_s.tolist()):
        if follow_up is not None and follow_up[request_id]:
            continue  # a session's later turn: issued when the turn before it ends
        if arrival_s > env.now:
            cluster.next_arrival_s = arrival_s
            yield env.timeout(arrival_s - env.now)
        cluster.submit(request_id)
    cluster.next_arrival_s = math.inf


def _replica(cluster: _Cluster, state: ReplicaState) -> Generator[simpy.Event, Any, None]:
    """Step the replica while it has work; sleep until a request arrives when it has none."""
    env = cluster.env
    resolved = cluster.resolved
    sched = resolved.scenario.scheduler
    policy = resolved.policy
    cost_model = resolved.cost
    overhead_s = sched.step_overhead_s
    decode_runs = sched.fast_mode and sched.policy in DECODE_RUN_POLICIES
    itl, kv = cluster.itl, state.kv
    # swap preemption: every GPU copies its shard of a token's KV over its own host link
    swap_s_per_token = (
        resolved.memory.kv_bytes_per_token_per_gpu / resolved.hardware.host_link_bandwidth_bytes_per_s
    )
    planner = RunPlanner(cost_model, overhead_s, cluster.compiled)
    while True:
        if not state.has_work:
            wakeup = env.event()
            cluster.wakeups[state.index] = wakeup
            yield wakeup
        if env.peek() <= env.now:  # others are due at this instant: let them act first
            yield Late(env)
        state.now_s = env.now
        plan = policy(state)
        if plan.is_empty and plan.wait_until_s is not None:  # e.g. a static batch filling up
            yield from wait_for_batch(cluster, state, plan.wait_until_s)
            continue
        if plan.is_empty:
            raise SimulatorError(
                f"replica {state.index}: policy {sched.policy!r} planned an empty step with "
                f"{len(state.waiting)} requests waiting and {kv.num_free_blocks} free KV blocks"
            )
        if decode_runs and plan.decode and not plan.prefills and not plan.preempted:
            run = planner.plan(state, env.now)
            if run is not None:
                planner.ended(run, cut=(yield from wait_for_run(cluster, state, run)))
                continue
        planner.restart()
        cost = cost_model.step(plan.shape())
        duration_s = cost.time_s + overhead_s
        if state.swap_tokens:  # KV copied to or from host memory, not overlapped with the step
            duration_s += state.swap_tokens * swap_s_per_token
            state.swap_tokens = 0
        preempted = len(plan.preempted)
        cluster.steps.add(state.index, env.now, duration_s, plan, preempted, kv.num_used_blocks, cost)
        yield env.timeout(duration_s)
        outcome = apply_step(state, plan, env.now)
        for gap_s, count in outcome.itl_groups:
            itl.gap_s.append(gap_s)
            itl.count.append(count)
        for seq in outcome.finished:
            cluster.finish(seq)


def run_engine(
    resolved: ResolvedScenario,
    requests: RequestTable,
    control: Callable[[_Cluster], None] | None = None,
) -> RunRecords:
    """Play ``requests`` through the resolved cluster until every request has finished or is rejected.

    ``control(cluster)`` is called before any request is issued, to set up processes that steer the
    cluster (the autoscaler of ``simulator.engine.autoscale``).
    """
    if resolved.pools is not None:  # disaggregated prefill/decode pools: their own replica processes
        if control is not None:
            raise ConfigError("disaggregation", "prefill and decode pools", "null when autoscaling")
        from simulator.engine.disaggregated import run_pools  # imports this module

        return run_pools(resolved, requests)
    if control is None and use_compiled_engine(resolved, requests):
        return run_compiled(resolved, requests)
    env = Environment()
    cluster = _Cluster(env, resolved, requests)
    if control is not None:
        control(cluster)
    for state in cluster.replicas:
        env.process(_replica(cluster, state))
    cluster.start_traffic(requests)
    env.run()
    for state in cluster.replicas:
        for seq in state.running():
            if seq.status is not SeqStatus.FINISHED:  # only a policy bug leaves work behind
                raise SimulatorError(f"request {seq.request_id} was left running on replica {state.index}")
    return cluster.records()
