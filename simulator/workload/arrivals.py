"""Synthetic arrival times (seconds from the start of the run) and rescaling a trace to a target rate.

Every generator has one signature, ``(workload, num, rng) -> float64 array of num non-decreasing
times``, and is registered in ``ARRIVAL_GENERATORS`` by the name ``WorkloadConfig.arrival`` uses
("trace" is not here: traces are loaded, not drawn; see ``simulator.workload.traces``).

With ``workload.rate_profile`` the poisson and gamma generators draw a unit-rate process and map it
onto the profile's periodic rate (``apply_rate_profile``): a day of traffic, time-scaled.

Poisson arrivals are the arrival times of a Poisson process started at t = 0: the first request comes
at the first exponential gap, not at 0 (so an M/M/1 set-up sees an empty system at the first arrival
exactly as queueing theory assumes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.config import RateProfile, WorkloadConfig
from simulator.errors import ConfigError

ArrivalGenerator = Callable[[WorkloadConfig, int, np.random.Generator], np.ndarray]


def poisson_arrivals(rate_per_s: float, num: int, rng: np.random.Generator) -> np.ndarray:
    """Times of ``num`` Poisson arrivals at ``rate_per_s``: cumulative sums of Exp(mean 1/rate) gaps."""
    gaps_s = rng.exponential(scale=1.0 / rate_per_s, size=num)
    return np.cumsum(gaps_s, dtype=np.float64)


def gamma_arrivals(rate_per_s: float, cv: float, num: int, rng: np.random.Generator) -> np.ndarray:
    """Times of a renewal process with Gamma gaps of mean 1/rate and coefficient of variation ``cv``.

    Gamma(shape k, scale theta) has mean k*theta and CV 1/sqrt(k), so k = 1/cv^2 and
    theta = 1/(rate * k). cv = 1 is a Poisson process; cv > 1 is burstier (clusters of close
    arrivals separated by long gaps), cv < 1 more regular. As with Poisson, the first request comes
    at the first gap.
    """
    shape = 1.0 / (cv * cv)
    scale_s = 1.0 / (rate_per_s * shape)
    gaps_s = rng.gamma(shape=shape, scale=scale_s, size=num)
    return np.cumsum(gaps_s, dtype=np.float64)


def all_at_zero(num: int) -> np.ndarray:
    """``num`` arrivals at t = 0 (burst benchmarks; closed-loop workloads the engine paces itself)."""
    return np.zeros(num, dtype=np.float64)


def rescale_to_rate(arrival_s: np.ndarray, target_rate_per_s: float) -> np.ndarray:
    """Stretch or compress arrival times so their mean rate is ``target_rate_per_s``.

    observed_rate = (N - 1) / (t_last - t_first) (N arrivals span N - 1 gaps), and
    t' = t * observed_rate / target_rate. Relative spacing (burstiness, the CV of the gaps) is kept;
    only the time axis is scaled. With a single arrival there is nothing to scale and the times are
    returned unchanged.
    """
    num = arrival_s.shape[0]
    if num < 2:
        return arrival_s.astype(np.float64, copy=True)
    span_s = float(arrival_s[-1] - arrival_s[0])
    if span_s <= 0:
        raise ConfigError(
            "workload.rate_per_s",
            target_rate_per_s,
            f"the trace's {num} requests all arrive at the same time, so it has no rate to rescale; "
            "set workload.rate_per_s to null to replay it as is",
        )
    observed_rate_per_s = (num - 1) / span_s
    scaled_s: np.ndarray = arrival_s * (observed_rate_per_s / target_rate_per_s)
    return scaled_s


def apply_rate_profile(unit_times: np.ndarray, rate_per_s: float, profile: RateProfile) -> np.ndarray:
    """Map arrival times of a unit-rate process onto a periodic, piecewise-constant rate.

    Time-rescaling theorem: if u_k are arrivals at rate 1, t_k = Lambda^-1(u_k), with
    Lambda(t) = integral of rate(s) ds, are arrivals of a process with intensity rate(t) (Poisson stays
    Poisson; gamma gaps keep their CV in "operational" time). rate(t) = rate_per_s x factors[i] in
    slot i = floor(t / slot_s) mod len(factors); slots with factor 0 get no arrivals.
    """
    factors = np.asarray(profile.factors, dtype=np.float64)
    per_slot = rate_per_s * profile.slot_s * factors  # expected arrivals per slot
    cum = np.concatenate(([0.0], np.cumsum(per_slot)))
    per_period, period_s = float(cum[-1]), profile.slot_s * len(factors)
    periods = np.floor(unit_times / per_period)
    rest = unit_times - periods * per_period  # in [0, per_period)
    slot = np.clip(np.searchsorted(cum, rest, side="right") - 1, 0, len(factors) - 1)
    rate = rate_per_s * factors[slot]
    within_s = np.divide(rest - cum[slot], rate, out=np.zeros_like(rest), where=rate > 0)
    times: np.ndarray = periods * period_s + slot * profile.slot_s + np.minimum(within_s, profile.slot_s)
    return np.maximum.accumulate(times)  # guards the last ulp at slot edges


def _poisson(workload: WorkloadConfig, num: int, rng: np.random.Generator) -> np.ndarray:
    if workload.rate_profile is not None:
        return apply_rate_profile(poisson_arrivals(1.0, num, rng), _rate(workload), workload.rate_profile)
    return poisson_arrivals(_rate(workload), num, rng)


def _gamma(workload: WorkloadConfig, num: int, rng: np.random.Generator) -> np.ndarray:
    if workload.rate_profile is not None:
        unit = gamma_arrivals(1.0, workload.cv, num, rng)
        return apply_rate_profile(unit, _rate(workload), workload.rate_profile)
    return gamma_arrivals(_rate(workload), workload.cv, num, rng)


def _zeros(workload: WorkloadConfig, num: int, rng: np.random.Generator) -> np.ndarray:
    return all_at_zero(num)


def _rate(workload: WorkloadConfig) -> float:
    if workload.rate_per_s is None:
        raise ConfigError("workload.rate_per_s", None, f"arrival {workload.arrival!r} needs a rate > 0")
    return workload.rate_per_s


ARRIVAL_GENERATORS: dict[str, ArrivalGenerator] = {
    "poisson": _poisson,
    "gamma": _gamma,
    "burst": _zeros,
    "concurrency": _zeros,
}
