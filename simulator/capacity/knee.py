"""Capacity answers (layer L5): does a run meet its SLO, the knee, B_sat, replicas for a peak, cost per token.

Steps 4-6 of the decision framework: find the highest arrival rate that meets the latency SLO (the
knee), size the deployment for a peak rate with Little's law and with the knee, and price a million
output tokens with the four cost dimensions (capital, operations, idle capacity, engineering).

Units: rates in requests per second (``_per_s``, ``_rps``), times in seconds, money in US dollars
(``_usd``), power in watts (``_w``), fractions in [0, 1] (``_frac``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simulator.config import MAX_NUM_REQUESTS, Scenario, SLOConfig
from simulator.errors import ConfigError, SimulatorError
from simulator.metrics.classes import meets_slo
from simulator.resolve import resolve
from simulator.simulate import SimulationResult, simulate
from simulator.speculative import Pricer

RATE_ARRIVALS = ("poisson", "gamma", "trace")
MIN_REQUESTS = 50


class NoKneeError(SimulatorError):
    """The knee search found no rate that meets the SLO, or no rate that misses it."""


@dataclass(frozen=True)
class RateCheck:
    """One offered rate against the SLO: pass or fail, and what was measured."""

    rate_per_s: float
    meets_slo: bool
    goodput_rps: float  # requests meeting every per-request target, per second of the run
    slo_met_frac: float  # of all issued requests (rejected and unfinished ones miss)
    failed: tuple[str, ...]  # the targets missed, e.g. ("ttft_p99_s",)
    summary: dict[str, Any]


def require_slo(slo: SLOConfig) -> None:
    """A knee needs a target: raise ConfigError when the scenario sets none."""
    if all(v is None for v in (slo.ttft_p99_s, slo.itl_p99_s, slo.e2e_p99_s, slo.goodput_frac)):
        raise ConfigError(
            "slo",
            slo.model_dump(),
            "set at least one of slo.ttft_p99_s, slo.itl_p99_s, slo.e2e_p99_s, slo.goodput_frac "
            "(for example --set slo.ttft_p99_s=1.0)",
        )


def request_slo_met(requests: pd.DataFrame, slo: SLOConfig) -> np.ndarray:
    """Per row of a request table, whether it met every per-request target (``metrics.meets_slo``)."""
    return meets_slo(
        np.asarray(requests["status"] == "finished", dtype=bool),
        requests["ttft_s"].to_numpy(dtype=float),
        requests["e2e_s"].to_numpy(dtype=float),
        requests["tpot_s"].to_numpy(dtype=float),
        slo,
    )


def check_slo(result: SimulationResult) -> RateCheck:
    """The run's p99 latencies against the scenario's slo.*_p99_s, plus the goodput fraction if set.

    Every issued request must finish (none rejected or left unfinished) for the run to pass.
    """
    slo = result.scenario.slo
    s = result.summary()
    failed = [
        key
        for key in ("ttft_p99_s", "itl_p99_s", "e2e_p99_s")
        if getattr(slo, key) is not None and not (float(s[key]) <= getattr(slo, key))  # NaN fails
    ]
    met = request_slo_met(result.requests, slo)
    met_frac = float(met.mean()) if met.size else 0.0
    if slo.goodput_frac is not None and met_frac < slo.goodput_frac:
        failed.append("goodput_frac")
    if s["num_completed"] < s["num_requests"]:
        failed.append("num_completed")
    rate = result.scenario.workload.rate_per_s
    return RateCheck(
        rate_per_s=float(rate) if rate is not None else float("nan"),
        meets_slo=not failed,
        goodput_rps=float(met.sum()) / s["duration_s"] if s["duration_s"] > 0 else 0.0,
        slo_met_frac=met_frac,
        failed=tuple(failed),
        summary=s,
    )


def rate_scenario(scenario: Scenario, rate_per_s: float, duration_s: float | None = None) -> Scenario:
    """The scenario at another mean arrival rate (a trace is rescaled to it).

    With ``duration_s`` the number of requests becomes ``ceil(rate x duration_s)`` (at least
    ``MIN_REQUESTS``), so every rate is measured over about the same simulated time: with a fixed count
    a high rate is a short burst whose queue never builds up, and it can look sustainable when it is not.
    """
    if scenario.workload.arrival not in RATE_ARRIVALS:
        raise ConfigError(
            "workload.arrival",
            scenario.workload.arrival,
            f"a rate sweep varies workload.rate_per_s, so use one of {', '.join(RATE_ARRIVALS)}",
        )
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ConfigError("rate_per_s", rate_per_s, "a positive, finite number of requests per second")
    updates: dict[str, Any] = {"workload.rate_per_s": float(rate_per_s)}
    if duration_s is not None:
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise ConfigError("duration_s", duration_s, "a positive, finite number of simulated seconds")
        num = max(MIN_REQUESTS, math.ceil(rate_per_s * duration_s))
        if num > MAX_NUM_REQUESTS:
            raise ConfigError(
                "duration_s",
                duration_s,
                f"{rate_per_s:.4g} req/s for {duration_s:g} s is {num:,} requests, over the limit of "
                f"{MAX_NUM_REQUESTS:,}; shorten the duration",
            )
        updates["workload.num_requests"] = num
    return scenario.with_updates(updates)


@dataclass(frozen=True)
class KneeResult:
    """The highest rate found to meet the SLO (within ``rel_tol`` of the first that misses it)."""

    knee_rate_per_s: float
    knee_rate_per_replica_per_s: float
    upper_rate_per_s: float  # the lowest rate found to miss the SLO
    rel_tol: float
    b_sat: int
    at_knee: RateCheck
    checks: tuple[RateCheck, ...]  # every evaluation, in the order made

    @property
    def goodput_rps(self) -> float:
        """Requests per second meeting every per-request target, at the knee."""
        return self.at_knee.goodput_rps

    def checks_frame(self) -> pd.DataFrame:
        """One row per evaluation (sorted by rate): rate, pass/fail, goodput, the measured p99s."""
        rows = [
            {
                "rate_per_s": c.rate_per_s,
                "meets_slo": c.meets_slo,
                "goodput_rps": c.goodput_rps,
                "failed": ",".join(c.failed),
                **{k: c.summary.get(k, float("nan")) for k in ("ttft_p99_s", "itl_p99_s", "e2e_p99_s")},
            }
            for c in self.checks
        ]
        return pd.DataFrame(rows).sort_values("rate_per_s", ignore_index=True)


def find_knee(
    scenario: Scenario,
    *,
    rel_tol: float = 0.05,
    start_rate_per_s: float | None = None,
    max_evaluations: int = 40,
    evaluate: Callable[[float], RateCheck] | None = None,
    duration_s: float | None = None,
) -> KneeResult:
    """Bracket the knee by doubling (or halving) the rate, then bisect until (hi - lo) / lo <= rel_tol.

    The result is within the stated tolerance: ``knee_rate_per_s`` meets the SLO, ``upper_rate_per_s``
    misses it, and (upper - knee) / knee <= rel_tol. ``evaluate(rate)`` defaults to simulating the
    scenario at that rate (over ``duration_s`` simulated seconds when given, see ``rate_scenario``) and
    checking its SLO; pass your own (a measured curve, a synthetic function) to search something else.
    """
    if not 0 < rel_tol < 1:
        raise ConfigError("rel_tol", rel_tol, "a relative tolerance in (0, 1), for example 0.05")
    if evaluate is None:
        require_slo(scenario.slo)
        evaluate = lambda rate: check_slo(simulate(rate_scenario(scenario, rate, duration_s)))  # noqa: E731
    checks: list[RateCheck] = []

    def run(rate: float) -> RateCheck:
        if len(checks) >= max_evaluations:
            tried = ", ".join(f"{c.rate_per_s:.4g}" for c in checks)
            raise NoKneeError(
                f"the knee search stopped after max_evaluations = {max_evaluations} without a rate that "
                f"meets the SLO and one that misses it (rates tried, req/s: {tried}); loosen the SLO, "
                "change start_rate_per_s or allow more evaluations"
            )
        checks.append(evaluate(rate))
        return checks[-1]

    lo, hi = _bracket(run, start_rate_per_s or scenario.workload.rate_per_s or 1.0)
    while (hi - lo.rate_per_s) / lo.rate_per_s > rel_tol:
        check = run((lo.rate_per_s + hi) / 2)
        lo, hi = (check, hi) if check.meets_slo else (lo, check.rate_per_s)
    resolved = resolve(scenario)
    return KneeResult(
        knee_rate_per_s=lo.rate_per_s,
        knee_rate_per_replica_per_s=lo.rate_per_s / resolved.num_replicas,
        upper_rate_per_s=hi,
        rel_tol=rel_tol,
        b_sat=saturation_batch(resolved.cost),
        at_knee=lo,
        checks=tuple(checks),
    )


def _bracket(run: Callable[[float], RateCheck], start_rate_per_s: float) -> tuple[RateCheck, float]:
    """A passing check and a failing rate: double from a passing start, halve from a failing one."""
    first = run(start_rate_per_s)
    if first.meets_slo:
        lo = first
        while (check := run(lo.rate_per_s * 2)).meets_slo:
            lo = check
        return lo, check.rate_per_s
    hi = start_rate_per_s
    while not (check := run(hi / 2)).meets_slo:
        hi = check.rate_per_s
    return check, hi


def saturation_batch(
    cost: Pricer, *, kv_len: int = 0, rise_frac: float = 0.10, max_batch: int = 1 << 16
) -> int:
    """B_sat: the smallest decode batch whose step takes more than (1 + rise_frac) x the batch-1 step.

    Below it a decode step streams the weights (memory-bound) and extra sequences are nearly free;
    above it the step time grows with the batch (compute-bound). ``kv_len=0`` isolates the weights;
    a longer KV length lowers B_sat because attention reads grow with the batch. Returns
    ``max_batch`` when the step never rises that far.
    """
    limit_s = cost.decode_step_time_s(1, kv_len) * (1 + rise_frac)
    if cost.decode_step_time_s(max_batch, kv_len) <= limit_s:
        return max_batch
    lo, hi = 1, 2  # step(lo) <= limit < step(hi) once bracketed
    while cost.decode_step_time_s(hi, kv_len) <= limit_s:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost.decode_step_time_s(mid, kv_len) <= limit_s else (lo, mid)
    return hi
