"""Autoscaling studies (layer L5): a day of traffic through a fixed and an autoscaled fleet, compared.

``autoscale_study(scenario, {"fixed": ..., "reactive": ..., "scheduled": ...})`` plays the same
requests (the scenario's workload, typically with a ``workload.rate_profile``) under each autoscaler
and reports per policy: paid replica-hours and GPU-hours, their rental cost, the saving against the
fixed fleet, SLO attainment overall and per hour, and the fewest replicas ever in service.

A simulated day is time-scaled: ``hour_s`` simulated seconds stand for one hour (default: the rate
profile's ``slot_s``), so replica-hours = paid replica-seconds / hour_s. Costs use a rental price
per GPU-hour (``CostInputs.cloud_usd_per_gpu_hour``, else the dated example of the hardware profile).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from simulator.capacity import CostInputs, request_slo_met
from simulator.capacity.cost import EXAMPLE_CLOUD_USD_PER_GPU_HOUR
from simulator.config import RateProfile, Scenario
from simulator.datafiles import read_yaml_mapping
from simulator.engine.autoscale import AutoscalerConfig, ScaleLog, run_autoscaled
from simulator.errors import ConfigError, describe_validation_error
from simulator.metrics.classes import class_slos
from simulator.resolve import resolve
from simulator.simulate import SimulationResult
from simulator.workload import build_workload

DEFAULT_AUTOSCALERS: dict[str, dict[str, Any]] = {"fixed": {"policy": "fixed"}, "reactive": {}}
"""The comparison ``load_autoscalers(None)`` gives: every replica all the time vs the reactive defaults."""


def load_autoscalers(source: str | Path | Mapping[str, Any] | None) -> dict[str, AutoscalerConfig]:
    """Named autoscalers from a YAML file or a mapping of name -> ``AutoscalerConfig`` settings
    (None: ``DEFAULT_AUTOSCALERS``). A bad entry raises ConfigError naming ``policies.<name>``."""
    if source is None:
        data: Mapping[str, Any] = DEFAULT_AUTOSCALERS
    elif isinstance(source, Mapping):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError("--policies", str(path), "no such file; give a YAML of name: {policy: ...}")
        data = read_yaml_mapping(path, "autoscaler policies")
    if not data:
        raise ConfigError("policies", dict(data), "at least one autoscaler, e.g. fixed: {policy: fixed}")
    configs = {}
    for name, settings in data.items():
        if not isinstance(settings, Mapping):
            raise ConfigError(f"policies.{name}", settings, "a mapping of AutoscalerConfig settings")
        try:
            configs[str(name)] = AutoscalerConfig.model_validate(dict(settings))
        except ValidationError as exc:
            known = ", ".join(AutoscalerConfig.model_fields)
            raise ConfigError(
                f"policies.{name}", dict(settings), f"{describe_validation_error(exc)} (keys: {known})"
            ) from None
    return configs


def predictive_schedule(
    profile: RateProfile,
    rate_per_s: float,
    knee_rate_per_replica_per_s: float,
    *,
    headroom_frac: float = 0.25,
    min_replicas: int = 1,
    max_replicas: int | None = None,
) -> tuple[int, ...]:
    """Replicas per slot for a forecast rate: ceil(rate x factor x (1 + headroom) / knee per replica)."""
    if not knee_rate_per_replica_per_s > 0:
        raise ConfigError("knee_rate_per_replica_per_s", knee_rate_per_replica_per_s, "a positive rate")
    out = []
    for factor in profile.factors:
        need = math.ceil(rate_per_s * factor * (1 + headroom_frac) / knee_rate_per_replica_per_s - 1e-9)
        out.append(max(min_replicas, min(max_replicas or need, need)))
    return tuple(out)


@dataclass(frozen=True)
class AutoscaledRun:
    """One run under an autoscaler: the result, the phase log, and what the fleet cost."""

    name: str
    config: AutoscalerConfig
    result: SimulationResult
    log: ScaleLog
    replica_hours: float
    gpu_hours: float
    cost_usd: float
    min_paid_replicas: int


def simulate_autoscaled(
    scenario: Scenario,
    config: AutoscalerConfig,
    *,
    name: str = "",
    hour_s: float = 3600.0,
    gpu_hour_usd: float | None = None,
) -> AutoscaledRun:
    """Simulate ``scenario`` (``layout.dp`` = the largest fleet) with ``config`` steering its replicas."""
    started = time.perf_counter()
    resolved = resolve(scenario)
    requests = build_workload(scenario.workload, scenario.seed)
    records, log = run_autoscaled(resolved, requests, config)
    result = SimulationResult(scenario, resolved, records, wall_s=time.perf_counter() - started)
    num = resolved.num_replicas
    replica_s = log.paid_replica_seconds(records.end_s, num)
    change_s = np.array(sorted({0.0, *(t for t, _, _ in log.events)}))
    price = gpu_hour_usd if gpu_hour_usd is not None else gpu_hour_price(resolved.hardware.name, None)
    replica_hours = replica_s / hour_s
    return AutoscaledRun(
        name=name or config.policy,
        config=config,
        result=result,
        log=log,
        replica_hours=replica_hours,
        gpu_hours=replica_hours * resolved.gpus_per_replica,
        cost_usd=replica_hours * resolved.gpus_per_replica * price,
        min_paid_replicas=int(log.paid_replicas_at(change_s, num).min()),
    )


def gpu_hour_price(hardware: str, inputs: CostInputs | None) -> float:
    """Rental price of one GPU-hour: the inputs' cloud price if set, else the profile's example."""
    if inputs is not None and inputs.cloud_usd_per_gpu_hour is not None:
        return inputs.cloud_usd_per_gpu_hour
    if hardware not in EXAMPLE_CLOUD_USD_PER_GPU_HOUR:
        raise ConfigError(
            "cost inputs: cloud_usd_per_gpu_hour",
            None,
            f"no example GPU-hour price for {hardware!r}; set cloud_usd_per_gpu_hour",
        )
    return EXAMPLE_CLOUD_USD_PER_GPU_HOUR[hardware]


@dataclass(frozen=True)
class AutoscaleStudy:
    """The runs, one row per policy (``table``) and one per policy and hour (``hourly``)."""

    runs: tuple[AutoscaledRun, ...]
    table: pd.DataFrame
    hourly: pd.DataFrame


def autoscale_study(
    scenario: Scenario,
    policies: Mapping[str, AutoscalerConfig],
    *,
    hour_s: float | None = None,
    cost_inputs: CostInputs | None = None,
    baseline: str | None = None,
) -> AutoscaleStudy:
    """Each policy on the same requests; savings are against ``baseline`` (default: the first)."""
    if not policies:
        raise ConfigError("policies", {}, "at least one autoscaler, for example {'fixed': ...}")
    profile = scenario.workload.rate_profile
    hour = hour_s or (profile.slot_s if profile is not None else 3600.0)
    price = gpu_hour_price(resolve(scenario).hardware.name, cost_inputs)
    runs = tuple(
        simulate_autoscaled(scenario, config, name=name, hour_s=hour, gpu_hour_usd=price)
        for name, config in policies.items()
    )
    base = next((r for r in runs if r.name == baseline), runs[0])
    rows, hourly = [], []
    for run in runs:
        s = run.result.summary()
        met = _slo_met(run.result.requests, scenario)
        rows.append(
            {
                "policy": run.name,
                "replica_hours": run.replica_hours,
                "gpu_hours": run.gpu_hours,
                "cost_usd": run.cost_usd,
                "saved_usd": base.cost_usd - run.cost_usd,
                "saved_frac": 1 - run.cost_usd / base.cost_usd if base.cost_usd > 0 else math.nan,
                "slo_attainment_frac": float(met.mean()) if met.size else math.nan,
                "num_requests": s["num_requests"],
                "num_completed": s["num_completed"],
                "ttft_p99_s": s["ttft_p99_s"],
                "e2e_p99_s": s["e2e_p99_s"],
                "min_paid_replicas": run.min_paid_replicas,
                **_per_class(run.result.requests, met, scenario),
            }
        )
        hourly.append(_hourly(run, met, hour))
    return AutoscaleStudy(runs, pd.DataFrame(rows), pd.concat(hourly, ignore_index=True))


def _slo_met(requests: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Per request, whether it met its SLO: its class's own (``workload.classes``), else the scenario's."""
    slos = class_slos(scenario)
    if not slos:
        return request_slo_met(requests, scenario.slo)
    met = np.zeros(len(requests), dtype=bool)
    for name, slo in slos.items():
        mine = np.asarray(requests["request_class"] == name, dtype=bool)
        met[mine] = request_slo_met(requests[mine], slo)
    return met


def _per_class(requests: pd.DataFrame, met: np.ndarray, scenario: Scenario) -> dict[str, float]:
    """``<class>.slo_attainment_frac`` and ``<class>.num_completed`` for a mixed workload."""
    out: dict[str, float] = {}
    for c in scenario.workload.classes:
        mine = np.asarray(requests["request_class"] == c.name, dtype=bool)
        out[f"{c.name}.slo_attainment_frac"] = float(met[mine].mean()) if mine.any() else math.nan
        out[f"{c.name}.num_completed"] = int((requests.loc[mine, "status"] == "finished").sum())
    return out


def _hourly(run: AutoscaledRun, met: np.ndarray, hour_s: float) -> pd.DataFrame:
    """Per hour of the run: arrivals per second, mean paid replicas, SLO attainment."""
    requests = run.result.requests
    hour = np.floor(requests["arrival_s"].to_numpy() / hour_s).astype(int)
    num_hours = int(hour.max()) + 1 if hour.size else 0
    arrivals = np.bincount(hour, minlength=num_hours)
    met_count = np.bincount(hour, weights=met.astype(float), minlength=num_hours)
    samples = (np.arange(num_hours)[:, None] + np.linspace(0, 1, 60, endpoint=False)[None, :]) * hour_s
    paid = run.log.paid_replicas_at(samples.ravel(), run.result.resolved.num_replicas).reshape(samples.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        attained = np.where(arrivals > 0, met_count / arrivals, np.nan)
    return pd.DataFrame(
        {
            "policy": run.name,
            "hour": np.arange(num_hours),
            "arrival_rate_per_s": arrivals / hour_s,
            "mean_paid_replicas": paid.mean(axis=1),
            "slo_attainment_frac": attained,
        }
    )
