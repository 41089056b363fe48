"""Autoscaling replicas during a run (layer L4): reactive thresholds, a schedule, or a fixed fleet.

The cluster is built with ``max_replicas`` (``layout.dp``) replicas; the autoscaler decides which of
them the router may use. Each replica is in one state, and every change is logged with its time:

    off --scale up--> starting --cold_start_s--> active --scale down--> draining --no work left--> off

A draining replica takes no new requests but finishes every request it holds (none is dropped or
moved), and only then turns off. Replicas that are starting, active or draining are paid for.

Policies (``AutoscalerConfig.policy``):
- ``fixed``: all ``max_replicas`` active for the whole run (the baseline).
- ``reactive``: every ``interval_s``, the metric over the active replicas against two thresholds:
  ``queue`` = requests in a replica (waiting + running) per active replica; ``utilization`` = busy
  fraction of the active replicas over the last interval. Above ``scale_up_above``: start one more
  replica (counting those already starting); below ``scale_down_below``: drain one. Never below
  ``min_replicas`` nor above ``max_replicas``.
- ``scheduled``: ``schedule[i]`` replicas during slot i (slots of ``slot_s``, the schedule repeating),
  each change made ``lead_s`` before the slot starts so new replicas are warm in time (a predictive
  schedule is one computed from a rate forecast; see ``simulator.autoscaling.predictive_schedule``).

Units: simulated seconds. Only this module and ``loop.py`` touch simpy (``control`` hook of
``run_engine``).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.engine.loop import _Cluster, run_engine
from simulator.engine.records import STATUS_PENDING, RunRecords
from simulator.errors import ConfigError
from simulator.resolve import ResolvedScenario
from simulator.scheduling.state import ReplicaState
from simulator.workload import RequestTable

ReplicaPhase = Literal["off", "starting", "active", "draining"]
PAID_PHASES = ("starting", "active", "draining")


class AutoscalerConfig(BaseModel):
    """How replicas are added and removed during a run (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    policy: Literal["fixed", "reactive", "scheduled"] = "reactive"
    min_replicas: int = Field(1, ge=1, le=4096)
    max_replicas: int | None = Field(None, ge=1, le=4096, description="default: layout.dp")
    initial_replicas: int | None = Field(None, ge=1, le=4096, description="reactive; default min_replicas")
    interval_s: float = Field(10.0, gt=0, le=1e6, description="reactive: seconds between decisions")
    cold_start_s: float = Field(30.0, ge=0, le=1e6, description="from scale-up to taking requests")
    metric: Literal["queue", "utilization"] = "queue"
    scale_up_above: float = Field(8.0, ge=0, description="queue: requests per replica; utilization: frac")
    scale_down_below: float = Field(2.0, ge=0)
    schedule: tuple[int, ...] | None = Field(None, min_length=1, max_length=100_000)
    slot_s: float | None = Field(None, gt=0, description="scheduled: seconds per schedule slot")
    lead_s: float | None = Field(None, ge=0, description="scheduled: act this early (default cold_start_s)")

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalerConfig:
        if self.scale_down_below >= self.scale_up_above:
            raise ValueError(
                f"scale_down_below = {self.scale_down_below} must be < scale_up_above = {self.scale_up_above}"
            )
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas = {self.max_replicas} < min_replicas = {self.min_replicas}")
        if self.policy == "scheduled" and (self.schedule is None or self.slot_s is None):
            raise ValueError("policy 'scheduled' needs schedule (replicas per slot) and slot_s")
        if self.schedule is not None and min(self.schedule) < 1:
            raise ValueError("schedule: every slot needs at least one replica")
        return self


@dataclass
class ScaleLog:
    """Every phase change: (time_s, replica, phase), in time order; the phases at the end of the run."""

    events: list[tuple[float, int, ReplicaPhase]] = field(default_factory=list)
    decisions: list[tuple[float, float, int]] = field(default_factory=list)  # (time, metric, wanted)

    def paid_replicas_at(self, times_s: np.ndarray, num_replicas: int) -> np.ndarray:
        """Replicas starting, active or draining at each time (the paid fleet size)."""
        phase: dict[int, str] = dict.fromkeys(range(num_replicas), "off")
        change_s, count = [0.0], [0]
        for time_s, replica, new in self.events:
            was = phase[replica] in PAID_PHASES
            phase[replica] = new
            delta = int(new in PAID_PHASES) - int(was)
            if delta:
                change_s.append(time_s)
                count.append(count[-1] + delta)
        index = np.searchsorted(np.asarray(change_s), times_s, side="right") - 1
        return np.asarray(count)[index]

    def paid_replica_seconds(self, end_s: float, num_replicas: int) -> float:
        """Integral of the paid fleet size over [0, end_s]."""
        edges = sorted({0.0, end_s, *(t for t, _, _ in self.events if t <= end_s)})
        if len(edges) < 2:
            return 0.0
        starts = np.asarray(edges[:-1])
        widths = np.diff(np.asarray(edges))
        return float(np.sum(self.paid_replicas_at(starts, num_replicas) * widths))


@dataclass
class _Scaler:
    """The autoscaler's view of the cluster: each replica's phase, and the log."""

    cluster: _Cluster
    config: AutoscalerConfig
    log: ScaleLog
    phase: list[ReplicaPhase]
    steps_seen: int = 0

    def set_phase(self, state: ReplicaState, phase: ReplicaPhase) -> None:
        self.phase[state.index] = phase
        self.log.events.append((float(self.cluster.env.now), state.index, phase))
        self.cluster.routable = [r for r in self.cluster.replicas if self.phase[r.index] == "active"]

    def count(self, *phases: str) -> int:
        return sum(p in phases for p in self.phase)

    def scale_up(self) -> None:
        """Start the first replica that is off; it takes requests after the cold start."""
        state = next(r for r in self.cluster.replicas if self.phase[r.index] == "off")
        self.set_phase(state, "starting")
        self.cluster.env.process(self._warm_up(state))

    def _warm_up(self, state: ReplicaState) -> Generator[simpy.Event, Any, None]:
        yield self.cluster.env.timeout(self.config.cold_start_s)
        self.set_phase(state, "active")

    def scale_down(self) -> None:
        """Drain the active replica holding the fewest requests (the last one on a tie)."""
        active = [r for r in self.cluster.replicas if self.phase[r.index] == "active"]
        state = min(reversed(active), key=lambda r: r.num_outstanding)
        self.set_phase(state, "draining")

    def retire_drained(self) -> None:
        for state in self.cluster.replicas:
            if self.phase[state.index] == "draining" and not state.has_work:
                self.set_phase(state, "off")

    def done(self) -> bool:
        """Every request finished or rejected: the run can end."""
        return not bool(np.any(self.cluster.log.status == STATUS_PENDING))

    def metric(self, interval_s: float) -> float:
        """Requests per active replica (queue), or the busy fraction of the last interval."""
        active = [r for r in self.cluster.replicas if self.phase[r.index] == "active"]
        if self.config.metric == "queue":
            return sum(r.num_outstanding for r in active) / max(len(active), 1)
        steps = self.cluster.steps
        new_rows = len(steps) - self.steps_seen
        busy_s = float(steps.column("duration_s")[self.steps_seen :].sum()) if new_rows else 0.0
        self.steps_seen = len(steps)
        return min(1.0, busy_s / (interval_s * max(len(active), 1)))


def _reactive(scaler: _Scaler, max_replicas: int) -> Generator[simpy.Event, Any, None]:
    config, env = scaler.config, scaler.cluster.env
    while True:
        yield env.timeout(config.interval_s)
        scaler.retire_drained()
        if scaler.done():
            return
        value = scaler.metric(config.interval_s)
        serving = scaler.count("active", "starting")
        if value > config.scale_up_above and serving < max_replicas:
            scaler.scale_up()
        elif value < config.scale_down_below and scaler.count("active") > config.min_replicas:
            scaler.scale_down()
        scaler.log.decisions.append((float(env.now), value, scaler.count("active", "starting")))


def _scheduled(scaler: _Scaler, max_replicas: int) -> Generator[simpy.Event, Any, None]:
    """Scale up ``lead_s`` before each slot (so replicas are warm at its start), down at its start."""
    config = scaler.config
    assert config.schedule is not None and config.slot_s is not None  # validated
    lead_s = config.cold_start_s if config.lead_s is None else config.lead_s
    slot = 1
    while True:
        wanted = _clip(config.schedule[slot % len(config.schedule)], config.min_replicas, max_replicas)
        for when_s, up in ((slot * config.slot_s - lead_s, True), (slot * config.slot_s, False)):
            if (yield from _wait_until(scaler, when_s)):
                return
            while up and scaler.count("active", "starting") < wanted:
                scaler.scale_up()
            while not up and scaler.count("active", "starting") > wanted:
                if scaler.count("active") <= config.min_replicas:
                    break
                scaler.scale_down()
            scaler.log.decisions.append((float(scaler.cluster.env.now), math.nan, wanted))
        slot += 1


def _wait_until(scaler: _Scaler, when_s: float) -> Generator[simpy.Event, Any, bool]:
    """Wait until ``when_s``, retiring drained replicas on the way; True once every request is done."""
    env, period_s = scaler.cluster.env, scaler.config.interval_s
    while True:
        scaler.retire_drained()
        if scaler.done():
            return True
        if env.now >= when_s:
            return False
        yield env.timeout(min(when_s - env.now, period_s))


def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _initial(config: AutoscalerConfig, max_replicas: int) -> int:
    if config.policy == "fixed":
        return max_replicas
    if config.policy == "scheduled":
        assert config.schedule is not None
        return _clip(config.schedule[0], config.min_replicas, max_replicas)
    return _clip(config.initial_replicas or config.min_replicas, config.min_replicas, max_replicas)


def run_autoscaled(
    resolved: ResolvedScenario, requests: RequestTable, config: AutoscalerConfig
) -> tuple[RunRecords, ScaleLog]:
    """Run with ``layout.dp`` replicas of which the autoscaler keeps between min and max in service."""
    num = resolved.num_replicas
    max_replicas = min(config.max_replicas or num, num)
    if config.min_replicas > max_replicas:
        raise ConfigError(
            "autoscaler.min_replicas", config.min_replicas, f"at most layout.dp = {num} (the largest fleet)"
        )
    log = ScaleLog()

    def control(cluster: _Cluster) -> None:
        scaler = _Scaler(cluster, config, log, ["off"] * num)
        for state in cluster.replicas[: _initial(config, max_replicas)]:
            scaler.set_phase(state, "active")
        if config.policy == "reactive":
            cluster.env.process(_reactive(scaler, max_replicas))
        elif config.policy == "scheduled":
            cluster.env.process(_scheduled(scaler, max_replicas))

    records = run_engine(resolved, requests, control=control)
    return records, log
