"""``trilemma curve | knee | compare``: what-if studies printed as tables, written as CSV and HTML (and the
scenario loading and table printing ``trilemma autoscale`` shares)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from simulator.capacity import CostInputs, plan_capacity
from simulator.cli.app import app, parse_overrides
from simulator.config import Scenario
from simulator.metrics.figures import compare_figure, curve_figure, knee_figure
from simulator.metrics.report import scenario_report
from simulator.studies import LATENCY_KEYS, compare, curve, parse_rates

ScenarioArg = Annotated[
    Path | None, typer.Argument(help="scenario YAML (default: the embedded Llama-3.1-70B FP8 example)")
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a key: --set layout.tp=4")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="write a self-contained HTML report here")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="write the table as CSV here")]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="simulate each rate for about this many seconds (requests = rate x duration) instead of "
        "workload.num_requests at every rate",
    ),
]
CostOpt = Annotated[Path | None, typer.Option("--cost", help="YAML of cost inputs (see CostInputs)")]
CostSetOpt = Annotated[
    list[str] | None, typer.Option("--cost-set", help="override a cost input: --cost-set usd_per_kwh=0.2")
]


def load_scenario(path: Path | None, set_: list[str] | None) -> Scenario:
    overrides = parse_overrides(set_ or [])
    return Scenario.from_yaml(path, overrides) if path else Scenario.default(overrides)


_LABELS = {
    "rate_per_s": "rate",
    "request_throughput_rps": "req/s",
    "goodput_rps": "goodput",
    "gpu_busy_frac": "busy",
    "mean_batch_size": "batch",
    "meets_slo": "SLO",
    "num_gpus": "GPUs",
    "output_tok_s_per_gpu": "tok/s/GPU",
    "cost_usd_per_mtok": "$/Mtok",
    "output_tok_s_per_w": "tok/s/W",
    "replica_hours": "replica-h",
    "gpu_hours": "GPU-h",
    "cost_usd": "$",
    "saved_frac": "saved",
    "saved_usd": "saved $",
    "slo_attainment_frac": "SLO met",
    "num_completed": "done",
    "num_requests": "requests",
    "min_paid_replicas": "min replicas",
}


def _is_seconds(key: str) -> bool:
    """``ttft_p99_s`` holds seconds; ``rate_per_s`` and ``output_throughput_tok_s`` do not."""
    return key.endswith("_s") and not key.endswith(("_per_s", "_tok_s"))


def _fmt(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-" if not isinstance(value, str) else value
    if _is_seconds(key):
        return f"{value * 1e3:,.1f}"
    if key.endswith("_frac"):
        return f"{value * 100:.1f}"
    return f"{value:,.3g}" if isinstance(value, float) else f"{value:,}"


def print_frame(frame: pd.DataFrame, title: str, columns: list[str]) -> None:
    table = Table(title=title + "  (times in ms, fractions in %)", header_style="bold")
    shown = [c for c in columns if c in frame]
    for col in shown:
        table.add_column(
            _LABELS.get(col, col.removesuffix("_s")), justify="left" if col == "name" else "right"
        )
    for _, row in frame.iterrows():
        table.add_row(*(_fmt(row[c], c) for c in shown))
    console = Console()
    Console(width=max(console.width, 150)).print(table)


def write_report(
    path: Path,
    title: str,
    figures: list[Any],
    table: pd.DataFrame,
    scenarios: list[Scenario],
    notes: list[str] | None = None,
) -> None:
    """Write the study's self-contained HTML page (see ``simulator.metrics.report``)."""
    page = scenario_report(title, figures, table, scenarios, notes=notes or ())
    path.write_text(page, encoding="utf-8")
    Console().print(f"report written to {path}")


_CURVE_COLUMNS = [
    "rate_per_s",
    "request_throughput_rps",
    "goodput_rps",
    "ttft_p50_s",
    "ttft_p99_s",
    "itl_p99_s",
    "e2e_p99_s",
    "gpu_busy_frac",
    "mean_batch_size",
    "meets_slo",
]


@app.command("curve")
def curve_command(
    scenario: ScenarioArg = None,
    rates: Annotated[str, typer.Option("--rates", help="start:stop:count (1:40:20) or a list (2,4,8)")] = "",
    set_: SetOpt = None,
    duration: DurationOpt = None,
    csv: CsvOpt = None,
    report: ReportOpt = None,
) -> None:
    """Latency and throughput against offered load: the scenario at each rate of --rates."""
    rate_list = parse_rates(rates)
    sc = load_scenario(scenario, set_)
    frame = curve(sc, rate_list, duration_s=duration)
    print_frame(frame, f"{sc.name}: latency-load curve", _CURVE_COLUMNS)
    if csv is not None:
        frame.to_csv(csv, index=False)
    if report is not None:
        fig = curve_figure(frame, sc.slo, title=f"{sc.name}: latency-load curve")
        write_report(report, f"Latency-load curve: {sc.name}", [fig], frame, [sc])


@app.command("knee")
def knee_command(
    scenario: ScenarioArg = None,
    set_: SetOpt = None,
    rel_tol: Annotated[float, typer.Option("--rel-tol", help="stop when (hi - lo) / lo <= this")] = 0.05,
    start_rate: Annotated[float | None, typer.Option("--start-rate", help="first rate tried (req/s)")] = None,
    peak_rate: Annotated[
        float | None, typer.Option("--peak-rate", help="size replicas for this peak")
    ] = None,
    headroom: Annotated[float, typer.Option("--headroom", help="burst headroom over the peak")] = 0.25,
    duration: DurationOpt = None,
    cost: CostOpt = None,
    cost_set: CostSetOpt = None,
    report: ReportOpt = None,
) -> None:
    """The highest arrival rate that meets the scenario's SLO (slo.*_p99_s, slo.goodput_frac)."""
    inputs = CostInputs.from_yaml(cost, parse_overrides(cost_set or []))
    sc = load_scenario(scenario, set_)
    plan = plan_capacity(
        sc,
        peak_rate_per_s=peak_rate,
        headroom_frac=headroom,
        cost_inputs=inputs,
        rel_tol=rel_tol,
        start_rate_per_s=start_rate,
        duration_s=duration,
    )
    knee = plan.knee
    frame = knee.checks_frame()
    print_frame(frame, f"{sc.name}: knee search", list(frame.columns))
    lines = plan.lines()
    for line in lines:
        Console().print(line, highlight=False)
    if report is not None:
        fig = knee_figure(frame, knee.knee_rate_per_s, sc.slo)
        write_report(report, f"Knee: {sc.name}", [fig], frame, [sc], notes=lines)


@app.command("compare")
def compare_command(
    scenarios: Annotated[list[Path], typer.Argument(help="scenario YAML files to compare")],
    set_: SetOpt = None,
    latency: Annotated[str, typer.Option("--latency", help="latency of the Pareto front")] = "e2e_p99_s",
    cost: CostOpt = None,
    cost_set: CostSetOpt = None,
    csv: CsvOpt = None,
    report: ReportOpt = None,
) -> None:
    """Several configurations side by side: throughput, latency, cost per Mtoken, tokens/s per watt."""
    inputs = CostInputs.from_yaml(cost, parse_overrides(cost_set or []))
    loaded: list[Scenario] = []
    for index, path in enumerate(scenarios):
        sc = load_scenario(path, set_)
        if sc.name == "scenario" or sc.name in {s.name for s in loaded}:
            sc = sc.with_updates({"name": f"{path.stem}" if sc.name == "scenario" else f"{sc.name}-{index}"})
        loaded.append(sc)
    frame = compare(loaded, cost_inputs=inputs, latency_key=latency)
    columns = ["name", "hardware", "num_gpus", "output_tok_s_per_gpu", "ttft_p99_s", "itl_p99_s"]
    columns += [latency, "cost_usd_per_mtok", "output_tok_s_per_w", "pareto"]
    print_frame(frame, "comparison", list(dict.fromkeys(columns)))
    if csv is not None:
        frame.to_csv(csv, index=False)
    if report is not None:
        assert latency in LATENCY_KEYS  # compare() has validated it
        write_report(report, "Comparison", [compare_figure(frame, latency)], frame, loaded)
