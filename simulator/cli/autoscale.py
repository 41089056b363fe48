"""``trilemma autoscale``: the same traffic through a fixed and autoscaled fleets, compared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simulator.autoscaling import autoscale_study, load_autoscalers
from simulator.capacity import CostInputs
from simulator.cli.app import app, parse_overrides
from simulator.cli.study import CostOpt, CostSetOpt, CsvOpt, ScenarioArg, SetOpt, load_scenario, print_frame

_COLUMNS = [
    "policy",
    "replica_hours",
    "gpu_hours",
    "cost_usd",
    "saved_frac",
    "slo_attainment_frac",
    "num_completed",
    "ttft_p99_s",
    "e2e_p99_s",
    "min_paid_replicas",
]


@app.command("autoscale")
def autoscale_command(
    scenario: ScenarioArg = None,
    set_: SetOpt = None,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            help="YAML of name: {autoscaler settings} (policy fixed|reactive|scheduled, min_replicas, ...); "
            "default: fixed and reactive",
        ),
    ] = None,
    hour_s: Annotated[
        float | None,
        typer.Option("--hour-s", help="simulated seconds per reported hour (default: the profile's slot_s)"),
    ] = None,
    cost: CostOpt = None,
    cost_set: CostSetOpt = None,
    csv: CsvOpt = None,
    hourly_csv: Annotated[
        Path | None, typer.Option("--hourly-csv", help="write the per-policy, per-hour table as CSV here")
    ] = None,
) -> None:
    """Replica-hours, cost and SLO attainment of each autoscaler on the scenario's traffic
    (``layout.dp`` is the largest fleet; give the workload a rate_profile for a day's shape)."""
    inputs = CostInputs.from_yaml(cost, parse_overrides(cost_set or []))
    sc = load_scenario(scenario, set_)
    study = autoscale_study(sc, load_autoscalers(policies), hour_s=hour_s, cost_inputs=inputs)
    columns = _COLUMNS + [c for c in study.table.columns if c not in _COLUMNS]
    print_frame(study.table, f"{sc.name}: autoscaling", columns)
    if csv is not None:
        study.table.to_csv(csv, index=False)
    if hourly_csv is not None:
        study.hourly.to_csv(hourly_csv, index=False)
