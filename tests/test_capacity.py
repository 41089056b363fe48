"""Capacity: the knee search on synthetic curves, B_sat, Little's-law sizing and the cost formula by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from simulator import Scenario
from simulator.capacity import (
    EXAMPLE_NODE_PRICE_USD,
    CostBreakdown,
    CostInputs,
    NoKneeError,
    RateCheck,
    cost_per_mtok,
    find_knee,
    plan_capacity,
    rate_scenario,
    replicas_needed,
    request_slo_met,
    saturation_batch,
)
from simulator.capacity.knee import MIN_REQUESTS
from simulator.config import SLOConfig
from simulator.errors import ConfigError
from simulator.resolve import resolve

SMALL = Scenario(model="llama-3.1-8b").with_updates(
    {"workload.num_requests": 100, "workload.input_tokens": 256, "workload.output_tokens": 32}
)
YEAR_TOKENS_AT_1000 = 1000 * 8760 * 3600.0  # output tokens of one year at 1000 tok/s


def _synthetic(true_knee: float, calls: list[float]) -> Callable[[float], RateCheck]:
    def evaluate(rate: float) -> RateCheck:
        calls.append(rate)
        ok = rate <= true_knee
        return RateCheck(
            rate, ok, min(rate, true_knee), 1.0 if ok else 0.5, () if ok else ("ttft_p99_s",), {}
        )

    return evaluate


@pytest.mark.parametrize("true_knee", [0.37, 3.0, 17.3, 250.0, 4321.0])
@pytest.mark.parametrize("start", [1.0, 40.0])
@pytest.mark.parametrize("rel_tol", [0.05, 0.01])
def test_knee_on_a_synthetic_monotone_curve(true_knee: float, start: float, rel_tol: float) -> None:
    calls: list[float] = []
    knee = find_knee(SMALL, rel_tol=rel_tol, start_rate_per_s=start, evaluate=_synthetic(true_knee, calls))
    assert knee.knee_rate_per_s <= true_knee < knee.upper_rate_per_s
    assert (knee.upper_rate_per_s - knee.knee_rate_per_s) / knee.knee_rate_per_s <= rel_tol
    assert (true_knee - knee.knee_rate_per_s) / true_knee <= rel_tol
    assert knee.at_knee.meets_slo and knee.goodput_rps == pytest.approx(knee.knee_rate_per_s)
    assert len(knee.checks) == len(calls) <= 40
    frame = knee.checks_frame()
    assert list(frame["rate_per_s"]) == sorted(calls)
    assert knee.knee_rate_per_replica_per_s == knee.knee_rate_per_s / SMALL.layout.dp


def test_knee_search_gives_up_with_a_clear_error() -> None:
    never: list[float] = []
    with pytest.raises(NoKneeError, match="max_evaluations = 8"):
        find_knee(SMALL, max_evaluations=8, evaluate=_synthetic(-1.0, never))
    assert len(never) == 8 and never == sorted(never, reverse=True)  # halving from the start rate


def test_knee_needs_an_slo_and_a_rate_arrival() -> None:
    with pytest.raises(ConfigError, match=r"slo\.ttft_p99_s"):
        find_knee(SMALL)
    closed = SMALL.with_updates({"workload.arrival": "concurrency", "workload.concurrency": 4})
    with pytest.raises(ConfigError, match=r"workload\.arrival"):
        find_knee(closed.with_updates({"slo.ttft_p99_s": 1.0}))
    with pytest.raises(ConfigError, match="rel_tol"):
        find_knee(SMALL, rel_tol=0.0)


def test_knee_of_a_real_small_scenario_meets_its_slo() -> None:
    sc = SMALL.with_updates({"slo.ttft_p99_s": 0.05, "slo.itl_p99_s": 0.04, "slo.goodput_frac": 0.95})
    knee = find_knee(sc, rel_tol=0.2, start_rate_per_s=8)
    assert knee.at_knee.meets_slo and knee.at_knee.summary["itl_p99_s"] <= 0.04
    assert knee.at_knee.slo_met_frac >= 0.95 and 0 < knee.goodput_rps <= knee.knee_rate_per_s * 1.5
    assert any(not c.meets_slo for c in knee.checks)
    assert knee.b_sat == saturation_batch(resolve(sc).cost)


def test_b_sat_is_where_the_decode_step_rises_ten_percent() -> None:
    for precision in ("bf16", "fp8"):
        cost = resolve(SMALL.with_updates({"precision.weights": precision})).cost
        base_s = cost.decode_step_time_s(1, 0)
        b_sat = saturation_batch(cost)
        assert 1 < b_sat < 4096
        assert cost.decode_step_time_s(b_sat, 0) > 1.1 * base_s >= cost.decode_step_time_s(b_sat - 1, 0)
        # attention reads of a long KV cache make the step rise sooner
        assert saturation_batch(cost, kv_len=4096) < b_sat


def test_request_slo_met_per_request() -> None:
    requests = pd.DataFrame(
        {
            "status": ["finished", "finished", "finished", "rejected", "finished"],
            "ttft_s": [0.1, 0.3, 0.1, math.nan, 0.1],
            "e2e_s": [1.0, 1.0, 3.0, math.nan, 1.0],
            "tpot_s": [0.01, 0.01, 0.01, math.nan, math.nan],
        }
    )
    slo = SLOConfig(ttft_p99_s=0.2, e2e_p99_s=2.0, itl_p99_s=0.02)
    assert list(request_slo_met(requests, slo)) == [True, False, False, False, True]
    assert list(request_slo_met(requests, SLOConfig())) == [True, True, True, False, True]


@pytest.mark.parametrize(
    ("peak", "e2e_s", "batch", "knee_per_replica", "headroom", "little", "by_knee"),
    [
        (10.0, 2.0, 8, 3.0, 0.25, 4, 5),  # 12.5 req/s x 2 s = 25 in flight / 8 -> 4; 12.5 / 3 -> 5
        (100.0, 4.0, 16, 10.0, 0.0, 25, 10),  # 400 in flight / 16 = 25 exactly
        (8.0, 1.0, 4, 4.0, 0.0, 2, 2),  # exact divisions do not round up
        (0.5, 0.2, 64, 50.0, 0.3, 1, 1),  # at least one replica
    ],
)
def test_littles_law_sizing_by_hand(
    peak: float, e2e_s: float, batch: int, knee_per_replica: float, headroom: float, little: int, by_knee: int
) -> None:
    size = replicas_needed(
        peak,
        mean_e2e_s=e2e_s,
        sustainable_batch=batch,
        knee_rate_per_replica_per_s=knee_per_replica,
        headroom_frac=headroom,
    )
    assert size.target_rate_per_s == pytest.approx(peak * (1 + headroom))
    assert size.concurrency == pytest.approx(peak * (1 + headroom) * e2e_s)
    assert (size.little_replicas, size.knee_replicas, size.replicas) == (
        little,
        by_knee,
        max(little, by_knee),
    )


def test_sizing_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="peak_rate_per_s"):
        replicas_needed(0.0, mean_e2e_s=1, sustainable_batch=4, knee_rate_per_replica_per_s=1)
    with pytest.raises(ConfigError, match="headroom_frac"):
        replicas_needed(
            1.0, mean_e2e_s=1, sustainable_batch=4, knee_rate_per_replica_per_s=1, headroom_frac=-1
        )


ZERO = CostInputs(node_price_usd=0, lifetime_years=1, usd_per_kwh=0, engineering_usd=0)


def _cost(inputs: CostInputs, num_gpus: int = 8, busy_frac: float = 1.0) -> CostBreakdown:
    return cost_per_mtok(
        inputs,
        num_gpus=num_gpus,
        gpus_per_node=8,
        tdp_w=700,
        output_tok_per_s=1000,
        busy_frac=busy_frac,
        hardware="h100-sxm",
    )


def test_cost_capital_whole_nodes_and_idle_by_hand() -> None:
    inputs = ZERO.model_copy(update={"node_price_usd": 240_000.0})
    full = _cost(inputs)
    assert full.capital_usd_per_mtok == pytest.approx(240_000 / YEAR_TOKENS_AT_1000 * 1e6)
    assert full.idle_usd_per_mtok == 0 and full.operations_usd_per_mtok == 0
    # two GPUs still buy a whole node: six of eight GPUs are paid idle capacity
    two = _cost(inputs, num_gpus=2)
    assert (two.num_nodes, two.num_paid_gpus, two.used_frac) == (1, 8, 0.25)
    assert two.capital_usd_per_mtok == pytest.approx(60_000 / YEAR_TOKENS_AT_1000 * 1e6)
    assert two.idle_usd_per_mtok == pytest.approx(180_000 / YEAR_TOKENS_AT_1000 * 1e6)
    # half busy: half the capital is idle capacity
    half = _cost(inputs, busy_frac=0.5)
    assert half.idle_usd_per_mtok == pytest.approx(half.capital_usd_per_mtok)
    assert half.total_usd_per_mtok == pytest.approx(full.total_usd_per_mtok)


def test_cost_operations_power_by_hand() -> None:
    inputs = ZERO.model_copy(update={"usd_per_kwh": 0.10, "pue": 1.5})
    cost = _cost(inputs, num_gpus=4, busy_frac=0.5)
    # 4 GPUs x 0.7 kW x 0.5 busy x PUE 1.5 = 2.1 kW, for 8760 h at $0.10/kWh = $1,839.60
    assert cost.operations_usd_per_mtok == pytest.approx(1839.6 / YEAR_TOKENS_AT_1000 * 1e6)
    assert cost.capital_usd_per_mtok == 0 == cost.idle_usd_per_mtok == cost.engineering_usd_per_mtok


def test_cost_cloud_rental_by_hand() -> None:
    inputs = ZERO.model_copy(update={"cloud_usd_per_gpu_hour": 2.0, "node_price_usd": 999_999.0})
    cost = _cost(inputs, num_gpus=4, busy_frac=0.5)
    rent_usd = 4 * 2.0 * 8760  # $70,080, half used and half idle; no capital, no power bill
    assert (cost.num_nodes, cost.num_paid_gpus, cost.capital_usd_per_mtok) == (0, 4, 0)
    assert cost.operations_usd_per_mtok == pytest.approx(rent_usd / 2 / YEAR_TOKENS_AT_1000 * 1e6)
    assert cost.idle_usd_per_mtok == pytest.approx(rent_usd / 2 / YEAR_TOKENS_AT_1000 * 1e6)


def test_cost_engineering_by_hand_and_total_is_the_sum() -> None:
    cost = _cost(ZERO.model_copy(update={"engineering_usd": 100_000.0, "lifetime_years": 2.0}))
    assert cost.engineering_usd_per_mtok == pytest.approx(100_000 / (2 * YEAR_TOKENS_AT_1000) * 1e6)
    full = _cost(CostInputs(), busy_frac=0.7)
    parts = ("capital", "operations", "idle", "engineering")
    assert full.total_usd_per_mtok == pytest.approx(sum(getattr(full, f"{p}_usd_per_mtok") for p in parts))
    with pytest.raises(ConfigError, match="output_tok_per_s"):
        cost_per_mtok(CostInputs(), num_gpus=1, gpus_per_node=8, tdp_w=700, output_tok_per_s=0, busy_frac=1)


def test_cost_inputs_from_yaml_and_overrides(tmp_path: Path) -> None:
    assert CostInputs().as_of == "2026-11"
    path = tmp_path / "cost.yaml"
    path.write_text("node_price_usd: 123456\npue: 1.1\n")
    inputs = CostInputs.from_yaml(path, {"pue": 1.2})
    assert (inputs.node_price_usd, inputs.pue, inputs.lifetime_years) == (123456, 1.2, 4.0)
    assert inputs.node_price_for("b300") == 123456  # one price set: it applies to every profile
    with pytest.raises(ConfigError, match="node_price_usdd"):
        CostInputs.from_yaml(None, {"node_price_usdd": 1})
    with pytest.raises(ConfigError, match="no such file"):
        CostInputs.from_yaml(tmp_path / "missing.yaml")


def test_node_price_per_profile_unless_one_price_is_set() -> None:
    inputs = ZERO.model_copy(update={"node_price_usd": None})
    h100 = _cost(inputs)
    assert h100.capital_usd_per_mtok == pytest.approx(
        EXAMPLE_NODE_PRICE_USD["h100-sxm"] / YEAR_TOKENS_AT_1000 * 1e6
    )
    b300 = cost_per_mtok(
        inputs, num_gpus=8, gpus_per_node=8, tdp_w=1100, output_tok_per_s=1000, busy_frac=1, hardware="b300"
    )
    assert b300.capital_usd_per_mtok == pytest.approx(
        EXAMPLE_NODE_PRICE_USD["b300"] / YEAR_TOKENS_AT_1000 * 1e6
    )
    assert _cost(ZERO.model_copy(update={"node_price_usd": 1.0})).capital_usd_per_mtok == pytest.approx(
        1 / YEAR_TOKENS_AT_1000 * 1e6
    )
    with pytest.raises(ConfigError, match=r"node_price_usd_by_hardware\.my-gpu"):
        cost_per_mtok(
            inputs, num_gpus=8, gpus_per_node=8, tdp_w=1, output_tok_per_s=1, busy_frac=1, hardware="my-gpu"
        )
    # a dotted override sets one profile's price and keeps the others
    custom = CostInputs.from_yaml(None, {"node_price_usd_by_hardware.my-gpu": 99.0})
    assert custom.node_price_for("my-gpu") == 99.0
    assert custom.node_price_for("h100-sxm") == EXAMPLE_NODE_PRICE_USD["h100-sxm"]


def test_plan_capacity_sizes_and_prices_a_fleet() -> None:
    scenario = SMALL.with_updates({"slo.ttft_p99_s": 0.5, "layout.tp": 2})
    plan = plan_capacity(scenario, peak_rate_per_s=20.0, headroom_frac=0.25, rel_tol=0.2, duration_s=10.0)
    knee = plan.knee
    assert knee.at_knee.meets_slo and knee.knee_rate_per_s > 0
    size = plan.sizing
    assert size is not None and plan.fleet_cost is not None
    assert size.knee_replicas == math.ceil(25.0 / knee.knee_rate_per_replica_per_s)
    assert plan.num_gpus == size.replicas * 2
    # the fleet carries headroom, so more of its paid capacity is idle than at the knee
    assert plan.fleet_cost.used_frac <= plan.cost_at_knee.used_frac + 1e-12
    row = plan.row()
    assert row["replicas"] == size.replicas and row["fleet_usd_per_mtok"] > 0
    text = "\n".join(plan.lines())
    assert "knee:" in text and "B_sat" in text and "Little's law" in text and "cost of that fleet" in text
    assert plan_capacity(scenario, rel_tol=0.2, duration_s=10.0).sizing is None


def test_rate_scenario_holds_the_duration() -> None:
    assert rate_scenario(SMALL, 30.0, duration_s=10.0).workload.num_requests == 300
    assert rate_scenario(SMALL, 0.1, duration_s=10.0).workload.num_requests == MIN_REQUESTS
    assert rate_scenario(SMALL, 30.0).workload.num_requests == 100
    with pytest.raises(ConfigError, match="shorten the duration"):
        rate_scenario(SMALL, 1e6, duration_s=1e6)
