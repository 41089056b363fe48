"""Steps 4-6 of the decision framework in one call: the knee, replicas for a peak, cost per Mtoken.

``plan_capacity(scenario, peak_rate_per_s=...)`` searches the knee of the scenario's SLO, measures
B_sat for its layout, sizes a fleet for the peak (Little's law and the knee; the larger), and prices
output tokens twice: at the knee (every replica as loaded as the SLO allows) and for the sized fleet
serving the peak (its headroom shows up as idle capacity).

The sized fleet's busy fraction is the knee's scaled by load: busy_knee x (peak per replica / knee
per replica), capped at 1. Batching makes busy time grow more slowly than load, so this slightly
understates the busy fraction below the knee (and the power bill with it). Units: req/s, seconds, USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.capacity.cost import CostBreakdown, CostInputs, cost_per_mtok, run_cost
from simulator.capacity.knee import KneeResult, find_knee
from simulator.capacity.sizing import Sizing, replicas_needed, sustainable_batch
from simulator.config import Scenario
from simulator.resolve import resolve


@dataclass(frozen=True)
class CapacityPlan:
    """The knee, B_sat, the sizing for a peak (when one was given) and the cost per Mtoken."""

    scenario: Scenario
    knee: KneeResult
    cost_inputs: CostInputs
    cost_at_knee: CostBreakdown
    sustainable_batch: int
    gpus_per_replica: int
    sizing: Sizing | None = None
    fleet_cost: CostBreakdown | None = None  # the sized fleet at the peak rate

    @property
    def num_gpus(self) -> int | None:
        """GPUs of the sized fleet (None without a peak rate)."""
        return None if self.sizing is None else self.sizing.replicas * self.gpus_per_replica

    def row(self) -> dict[str, Any]:
        """One row for a recommendation table (rates in req/s, cost in USD per million output tokens)."""
        fleet = self.fleet_cost
        return {
            "name": self.scenario.name,
            "hardware": self.scenario.hardware,
            "knee_rate_per_s": self.knee.knee_rate_per_s,
            "knee_rate_per_replica_per_s": self.knee.knee_rate_per_replica_per_s,
            "goodput_rps": self.knee.goodput_rps,
            "b_sat": self.knee.b_sat,
            "replicas": None if self.sizing is None else self.sizing.replicas,
            "num_gpus": self.num_gpus,
            "cost_at_knee_usd_per_mtok": self.cost_at_knee.total_usd_per_mtok,
            "fleet_usd_per_mtok": None if fleet is None else fleet.total_usd_per_mtok,
        }

    def lines(self) -> list[str]:
        """The plan in sentences (what ``trilemma knee`` prints under its table)."""
        knee, cost, inputs = self.knee, self.cost_at_knee, self.cost_inputs
        lines = [
            f"knee: {knee.knee_rate_per_s:.3g} req/s ({knee.knee_rate_per_replica_per_s:.3g} per replica, "
            f"{self.scenario.layout.dp} replicas); {knee.upper_rate_per_s:.3g} req/s misses the SLO "
            f"(rel_tol {knee.rel_tol:g})",
            f"goodput at the knee: {knee.goodput_rps:.3g} req/s meet every SLO target "
            f"({knee.at_knee.slo_met_frac * 100:.1f} % of requests)",
            f"B_sat (decode batch where a step exceeds 1.1x the batch-1 step): {knee.b_sat}",
            f"cost at the knee: ${cost.total_usd_per_mtok:.3f} per million output tokens = "
            + _parts(cost)
            + f" (example inputs as of {inputs.as_of}; override with --cost / --cost-set)",
        ]
        size, fleet = self.sizing, self.fleet_cost
        if size is not None and fleet is not None:
            lines.append(
                f"replicas for {size.peak_rate_per_s:g} req/s peak (+{size.headroom_frac * 100:.0f} % "
                f"headroom): {size.replicas} (Little's law: {size.concurrency:.1f} in flight / batch "
                f"{self.sustainable_batch} = {size.little_replicas}; knee: {size.target_rate_per_s:.3g} / "
                f"{knee.knee_rate_per_replica_per_s:.3g} = {size.knee_replicas}) = {self.num_gpus} GPUs"
            )
            lines.append(
                f"cost of that fleet at the peak: ${fleet.total_usd_per_mtok:.3f} per million output "
                f"tokens = {_parts(fleet)}"
            )
        return lines


def _parts(cost: CostBreakdown) -> str:
    return (
        f"capital {cost.capital_usd_per_mtok:.3f} + operations {cost.operations_usd_per_mtok:.3f} + idle "
        f"{cost.idle_usd_per_mtok:.3f} + engineering {cost.engineering_usd_per_mtok:.3f}"
    )


def plan_capacity(
    scenario: Scenario,
    *,
    peak_rate_per_s: float | None = None,
    headroom_frac: float = 0.25,
    cost_inputs: CostInputs | None = None,
    rel_tol: float = 0.05,
    start_rate_per_s: float | None = None,
    duration_s: float | None = None,
) -> CapacityPlan:
    """Find the knee of ``scenario``'s SLO, then size and price a fleet for ``peak_rate_per_s``.

    ``duration_s``: simulate each rate of the knee search for about this long (see ``find_knee``).
    """
    inputs = cost_inputs or CostInputs()
    knee = find_knee(scenario, rel_tol=rel_tol, start_rate_per_s=start_rate_per_s, duration_s=duration_s)
    resolved = resolve(scenario)
    hw = resolved.hardware
    s = knee.at_knee.summary
    at_knee = run_cost(s, gpus_per_node=hw.gpus_per_node, tdp_w=hw.tdp_w, inputs=inputs, hardware=hw.name)
    context = (s["input_throughput_tok_s"] + s["output_throughput_tok_s"]) / s["request_throughput_rps"]
    batch = sustainable_batch(resolved, context)
    plan = CapacityPlan(scenario, knee, inputs, at_knee, batch, resolved.gpus_per_replica)
    if peak_rate_per_s is None:
        return plan
    size = replicas_needed(
        peak_rate_per_s,
        mean_e2e_s=s["e2e_mean_s"],
        sustainable_batch=batch,
        knee_rate_per_replica_per_s=knee.knee_rate_per_replica_per_s,
        headroom_frac=headroom_frac,
    )
    load_frac = peak_rate_per_s / size.replicas / knee.knee_rate_per_replica_per_s
    fleet = cost_per_mtok(
        inputs,
        num_gpus=size.replicas * resolved.gpus_per_replica,
        gpus_per_node=hw.gpus_per_node,
        tdp_w=hw.tdp_w,
        output_tok_per_s=peak_rate_per_s * s["output_throughput_tok_s"] / s["request_throughput_rps"],
        busy_frac=min(1.0, max(0.0, float(s["gpu_busy_frac"])) * load_frac),
        hardware=hw.name,
    )
    return CapacityPlan(scenario, knee, inputs, at_knee, batch, resolved.gpus_per_replica, size, fleet)
