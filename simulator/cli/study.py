"""``trilemma curve | knee | compare``: what-if studies printed as tables, written as CSV and HTML."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from simulator.capacity import CostInputs, KneeResult, find_knee, replicas_needed, run_cost, sustainable_batch
from simulator.cli.app import app, parse_overrides
from simulator.config import Scenario
from simulator.metrics.figures import compare_figure, curve_figure, knee_figure
from simulator.metrics.report import report_html
from simulator.resolve import resolve
from simulator.studies import LATENCY_KEYS, compare, curve, parse_rates

ScenarioArg = Annotated[
    Path | None, typer.Argument(help="scenario YAML (default: the embedded Llama-3.1-70B FP8 example)")
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a key: --set layout.tp=4")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="write a self-contained HTML report here")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="write the table as CSV here")]
CostOpt = Annotated[Path | None, typer.Option("--cost", help="YAML of cost inputs (see CostInputs)")]
CostSetOpt = Annotated[
    list[str] | None, typer.Option("--cost-set", help="override a cost input: --cost-set usd_per_kwh=0.2")
]


def _load(path: Path | None, set_: list[str] | None) -> Scenario:
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


def _print_frame(frame: pd.DataFrame, title: str, columns: list[str]) -> None:
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


def _write_report(
    path: Path,
    title: str,
    figures: list[Any],
    table: pd.DataFrame,
    scenarios: list[Scenario],
    notes: list[str] | None = None,
) -> None:
    yamls = {sc.name: sc.to_yaml() for sc in scenarios}
    hardware = sorted({sc.hardware for sc in scenarios})
    page = report_html(title, figures, table, yamls, hardware, notes=notes or ())
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
    csv: CsvOpt = None,
    report: ReportOpt = None,
) -> None:
    """Latency and throughput against offered load: the scenario at each rate of --rates."""
    rate_list = parse_rates(rates)
    sc = _load(scenario, set_)
    frame = curve(sc, rate_list)
    _print_frame(frame, f"{sc.name}: latency-load curve", _CURVE_COLUMNS)
    if csv is not None:
        frame.to_csv(csv, index=False)
    if report is not None:
        fig = curve_figure(frame, sc.slo, title=f"{sc.name}: latency-load curve")
        _write_report(report, f"Latency-load curve: {sc.name}", [fig], frame, [sc])


def _knee_lines(
    sc: Scenario, knee: KneeResult, peak: float | None, headroom: float, inputs: CostInputs
) -> list[str]:
    """What the knee command prints under the table: knee, goodput, B_sat, cost, sizing."""
    resolved = resolve(sc)
    s = knee.at_knee.summary
    hw = resolved.hardware
    cost = run_cost(s, gpus_per_node=hw.gpus_per_node, tdp_w=hw.tdp_w, inputs=inputs)
    lines = [
        f"knee: {knee.knee_rate_per_s:.3g} req/s ({knee.knee_rate_per_replica_per_s:.3g} per replica, "
        f"{sc.layout.dp} replicas); {knee.upper_rate_per_s:.3g} req/s misses the SLO "
        f"(rel_tol {knee.rel_tol:g})",
        f"goodput at the knee: {knee.goodput_rps:.3g} req/s meet every SLO target "
        f"({knee.at_knee.slo_met_frac * 100:.1f} % of requests)",
        f"B_sat (decode batch where a step exceeds 1.1x the batch-1 step): {knee.b_sat}",
        f"cost at the knee: ${cost.total_usd_per_mtok:.3f} per million output tokens = capital "
        f"{cost.capital_usd_per_mtok:.3f} + operations {cost.operations_usd_per_mtok:.3f} + idle "
        f"{cost.idle_usd_per_mtok:.3f} + engineering {cost.engineering_usd_per_mtok:.3f} "
        f"(example inputs as of {inputs.as_of}; override with --cost / --cost-set)",
    ]
    if peak is not None:
        context = (s["input_throughput_tok_s"] + s["output_throughput_tok_s"]) / s["request_throughput_rps"]
        batch = sustainable_batch(resolved, context)
        size = replicas_needed(
            peak,
            mean_e2e_s=s["e2e_mean_s"],
            sustainable_batch=batch,
            knee_rate_per_replica_per_s=knee.knee_rate_per_replica_per_s,
            headroom_frac=headroom,
        )
        lines.append(
            f"replicas for {peak:g} req/s peak (+{headroom * 100:.0f} % headroom): {size.replicas} "
            f"(Little's law: {size.concurrency:.1f} in flight / batch {batch} = {size.little_replicas}; "
            f"knee: {size.target_rate_per_s:.3g} / {knee.knee_rate_per_replica_per_s:.3g} = "
            f"{size.knee_replicas}) = {size.replicas * sc.layout.tp} GPUs"
        )
    return lines


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
    cost: CostOpt = None,
    cost_set: CostSetOpt = None,
    report: ReportOpt = None,
) -> None:
    """The highest arrival rate that meets the scenario's SLO (slo.*_p99_s, slo.goodput_frac)."""
    inputs = CostInputs.from_yaml(cost, parse_overrides(cost_set or []))
    sc = _load(scenario, set_)
    knee = find_knee(sc, rel_tol=rel_tol, start_rate_per_s=start_rate)
    frame = knee.checks_frame()
    _print_frame(frame, f"{sc.name}: knee search", list(frame.columns))
    lines = _knee_lines(sc, knee, peak_rate, headroom, inputs)
    for line in lines:
        Console().print(line, highlight=False)
    if report is not None:
        fig = knee_figure(frame, knee.knee_rate_per_s, sc.slo)
        _write_report(report, f"Knee: {sc.name}", [fig], frame, [sc], notes=lines)


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
        sc = _load(path, set_)
        if sc.name == "scenario" or sc.name in {s.name for s in loaded}:
            sc = sc.with_updates({"name": f"{path.stem}" if sc.name == "scenario" else f"{sc.name}-{index}"})
        loaded.append(sc)
    frame = compare(loaded, cost_inputs=inputs, latency_key=latency)
    columns = ["name", "hardware", "num_gpus", "output_tok_s_per_gpu", "ttft_p99_s", "itl_p99_s"]
    columns += [latency, "cost_usd_per_mtok", "output_tok_s_per_w", "pareto"]
    _print_frame(frame, "comparison", list(dict.fromkeys(columns)))
    if csv is not None:
        frame.to_csv(csv, index=False)
    if report is not None:
        assert latency in LATENCY_KEYS  # compare() has validated it
        _write_report(report, "Comparison", [compare_figure(frame, latency)], frame, loaded)
