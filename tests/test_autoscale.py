"""Rate profiles and autoscaling: arrivals follow the profile; the autoscaler keeps its minimum, never
routes to a replica that is not active, drains before turning off, and loses no request."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import Scenario, build_workload, simulate
from simulator.autoscaling import autoscale_study, predictive_schedule, simulate_autoscaled
from simulator.config import RateProfile
from simulator.engine.autoscale import AutoscalerConfig, ScaleLog
from simulator.metrics.figures import autoscale_figure
from simulator.validation import ScenarioError

FACTORS = [0.2, 1.0, 1.0, 0.2, 0.0, 0.5]
DAY = Scenario(model="llama-3.1-8b", name="day").with_updates(
    {
        "layout.dp": 4,
        "workload.rate_per_s": 40,
        "workload.rate_profile": {"slot_s": 5, "factors": FACTORS},
        "workload.num_requests": round(40 * 5 * sum(FACTORS)),
        "workload.input_tokens": 256,
        "workload.output_tokens": 64,
        "slo.ttft_p99_s": 0.5,
    }
)
REACTIVE = AutoscalerConfig(
    policy="reactive", min_replicas=2, interval_s=0.5, cold_start_s=1.0, scale_up_above=6, scale_down_below=2
)


def test_rate_profile_arrivals_follow_the_factors() -> None:
    scenario = DAY.with_updates({"workload.num_requests": 30_000})
    arrival_s = build_workload(scenario.workload, 0).arrival_s
    assert np.all(np.diff(arrival_s) >= 0)
    slot = (arrival_s // 5).astype(int) % len(FACTORS)
    counts = np.bincount(slot, minlength=len(FACTORS))
    num_periods = arrival_s[-1] / (5 * len(FACTORS))
    expected = 40 * 5 * np.array(FACTORS) * num_periods
    assert counts[4] == 0  # a slot with factor 0 gets nothing
    assert np.allclose(counts, expected, rtol=0.05, atol=5)
    gamma = scenario.with_updates({"workload.arrival": "gamma", "workload.cv": 3.0})
    assert (build_workload(gamma.workload, 0).arrival_s // 5 % len(FACTORS) == 4).sum() == 0


def test_rate_profile_is_validated() -> None:
    with pytest.raises(ScenarioError, match="rate_profile"):
        DAY.with_updates({"workload.arrival": "burst"})
    with pytest.raises(ScenarioError, match="factors"):
        DAY.with_updates({"workload.rate_profile.factors": [0, 0]})


def _phases_at(log: ScaleLog, replica: int, time_s: float) -> str:
    phase = "off"
    for t, r, p in log.events:
        if t > time_s:
            break
        if r == replica:
            phase = p
    return phase


@pytest.mark.parametrize(
    "config",
    [
        REACTIVE,
        REACTIVE.model_copy(update={"metric": "utilization", "scale_up_above": 0.6, "scale_down_below": 0.2}),
        AutoscalerConfig(
            policy="scheduled", min_replicas=2, schedule=(1, 4, 4, 1, 1, 2), slot_s=5, cold_start_s=1
        ),
    ],
    ids=["queue", "utilization", "scheduled"],
)
def test_autoscaler_keeps_its_minimum_and_loses_no_request(config: AutoscalerConfig) -> None:
    run = simulate_autoscaled(DAY, config, hour_s=5)
    requests = run.result.requests
    assert (requests["status"] == "finished").all()  # nothing lost, nothing left behind
    log = run.log
    # the minimum: at no time fewer than min_replicas active (starting ones do not count)
    counts = []
    for i, (t, _, _) in enumerate(log.events):
        if i + 1 == len(log.events) or log.events[i + 1][0] > t:  # after every change made at time t
            counts.append(sum(_phases_at(log, r, t) == "active" for r in range(4)))
    assert min(counts) >= config.min_replicas
    assert run.min_paid_replicas >= config.min_replicas
    # every request went to a replica that was active when it arrived
    for arrival_s, replica in zip(requests["arrival_s"], requests["replica"], strict=True):
        assert _phases_at(log, int(replica), float(arrival_s)) == "active"
    # a replica turns off only when everything it was given has finished
    for t, replica, phase in log.events:
        if phase == "off":
            mine = requests[(requests["replica"] == replica) & (requests["arrival_s"] <= t)]
            assert (mine["finish_s"] <= t).all()
    assert any(p == "draining" for _, _, p in log.events)  # it did scale down
    assert max(counts) > config.min_replicas  # and up


def test_fixed_policy_is_the_plain_engine() -> None:
    fixed = simulate_autoscaled(DAY, AutoscalerConfig(policy="fixed"))
    plain = simulate(DAY)
    cols = ["arrival_s", "replica", "first_token_s", "finish_s"]
    assert fixed.result.requests[cols].equals(plain.requests[cols])
    assert fixed.replica_hours == pytest.approx(4 * plain.records.end_s / 3600)


def test_study_reports_savings_and_hourly_attainment() -> None:
    study = autoscale_study(DAY, {"fixed": AutoscalerConfig(policy="fixed"), "reactive": REACTIVE})
    table = study.table.set_index("policy")
    assert table.loc["fixed", "saved_usd"] == 0
    assert 0 < table.loc["reactive", "saved_frac"] < 1  # fewer replica-hours than the fixed fleet
    assert table.loc["reactive", "cost_usd"] == pytest.approx(table.loc["reactive", "gpu_hours"] * 2.5)
    hourly = study.hourly[study.hourly["policy"] == "reactive"]
    assert list(hourly["hour"]) == list(range(len(hourly))) and len(hourly) >= 5
    assert hourly["slo_attainment_frac"].dropna().between(0, 1).all()
    assert hourly["mean_paid_replicas"].min() >= 2
    fig = autoscale_figure(study.hourly)
    names = [t.name for t in fig.data]
    assert names[:2] == ["fixed: replicas", "fixed: SLO met"] and names[-1] == "arrivals (req/s)"


def test_predictive_schedule_by_hand() -> None:
    profile = RateProfile(slot_s=1, factors=(0.1, 1.0, 0.5))
    # 10 req/s x factor x 1.25 headroom / 2 req/s per replica = 0.625, 6.25, 3.125 -> 1, 7, 4
    assert predictive_schedule(profile, 10, 2.0) == (1, 7, 4)
    assert predictive_schedule(profile, 10, 2.0, min_replicas=2, max_replicas=5) == (2, 5, 4)


def _hybrid(batch_priority: int) -> Scenario:
    """The day's interactive traffic plus a backlog of batch jobs sent at the start."""
    interactive = {
        "name": "interactive",
        "priority": 0,
        "rate_per_s": 40,
        "rate_profile": {"slot_s": 5, "factors": FACTORS},
        "num_requests": round(40 * 5 * sum(FACTORS)),
        "input_tokens": 256,
        "output_tokens": 64,
        "slo": {"ttft_p99_s": 0.5},
    }
    batch = {
        "name": "batch",
        "priority": batch_priority,
        "arrival": "burst",
        "num_requests": 400,
        "input_tokens": 1024,
        "output_tokens": 256,
    }
    return Scenario.from_dict(
        {"model": "llama-3.1-8b", "layout": {"dp": 2}, "workload": {"classes": [interactive, batch]}}
    )


def test_batch_jobs_fill_spare_capacity_at_low_priority() -> None:
    fixed = {"fixed": AutoscalerConfig(policy="fixed")}
    low = autoscale_study(_hybrid(1), fixed, hour_s=5).table.iloc[0]
    same = autoscale_study(_hybrid(0), fixed, hour_s=5).table.iloc[0]
    # every batch job finishes on the same paid fleet, in the interactive traffic's gaps, while the
    # interactive class keeps its SLO only when the batch class yields to it
    assert low["batch.num_completed"] == same["batch.num_completed"] == 400
    assert low["interactive.slo_attainment_frac"] > 0.95 > same["interactive.slo_attainment_frac"]
