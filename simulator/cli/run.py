"""``trilemma run``: simulate one scenario, print its summary, write its results."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from simulator.cli.app import app, parse_overrides
from simulator.cli.study import write_report
from simulator.config import Scenario
from simulator.metrics.figures import run_figure
from simulator.simulate import SimulationResult, simulate


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:,.1f} ms"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def summary_table(result: SimulationResult) -> Table:
    """The summary as a readable table: latencies in ms, fractions in %."""
    s = result.summary()
    sc = result.scenario
    title = (
        f"{sc.name}: {result.resolved.model.name} {sc.precision.weights} on {s['num_gpus']}x "
        f"{result.resolved.hardware.name} (tp={sc.layout.tp}, dp={sc.layout.dp})"
    )
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("requests (completed / rejected)", f"{s['num_completed']:,} / {s['num_rejected']:,}"),
        ("simulated duration", f"{s['duration_s']:,.1f} s"),
        ("request throughput", f"{s['request_throughput_rps']:,.2f} req/s"),
        ("output throughput", f"{s['output_throughput_tok_s']:,.0f} tok/s"),
        ("input throughput", f"{s['input_throughput_tok_s']:,.0f} tok/s"),
    ]
    for name in ("ttft", "itl", "tpot", "e2e"):
        keys = [k for k in s if k.startswith(f"{name}_p") and k.endswith("_s")]
        rows.append(
            (
                f"{name.upper()} " + " / ".join(k.split("_")[1] for k in keys),
                " / ".join(_ms(s[k]) for k in keys),
            )
        )
    rows += [
        ("mean batch size", f"{s['mean_batch_size']:.1f}"),
        ("GPU busy", _pct(s["gpu_busy_frac"])),
        ("MFU / MBU", f"{_pct(s['mfu_frac'])} / {_pct(s['mbu_frac'])}"),
        ("KV cache peak", _pct(s["kv_peak_frac"])),
        ("preemptions", f"{s['num_preemptions']:,}"),
        ("step times", f"calibrated: {s['calibration_source']}" if s["calibrated"] else "spec-only"),
    ]
    for c in sc.workload.classes:
        n = c.name
        rows.append(
            (
                f"{n}: done / TTFT p99 / TPOT p99 / SLO met",
                f"{s[n + '.num_completed']:,} / {_ms(s[n + '.ttft_p99_s'])} / {_ms(s[n + '.tpot_p99_s'])}"
                f" / {_pct(s[n + '.slo_met_frac'])}",
            )
        )
    rows.append(("wall time", f"{result.wall_s:.2f} s ({s['engine']} engine)"))
    for key, value in rows:
        table.add_row(key, value)
    return table


@app.command()
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="scenario YAML (default: the embedded Llama-3.1-70B FP8 example)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a key: --set layout.tp=4 (repeatable)")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the summary as JSON here ('-' for stdout)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write requests.parquet, steps.parquet, summary.json, scenario.yaml here"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="do not print the summary table")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="write a self-contained HTML report here")
    ] = None,
) -> None:
    """Simulate one scenario and print its summary."""
    overrides = parse_overrides(set_ or [])
    sc = Scenario.from_yaml(scenario, overrides) if scenario else Scenario.default(overrides)
    result = simulate(sc)
    if not quiet:
        Console().print(summary_table(result))
    if json_path is not None:
        text = json.dumps(result.summary(), indent=2, default=str).replace("NaN", "null")
        if str(json_path) == "-":
            sys.stdout.write(text + "\n")
        else:
            json_path.write_text(text + "\n")
    if out is not None:
        result.save(out)
        if not quiet:
            Console().print(f"results written to {out}/")
    if report is not None:
        figure = run_figure(result.requests, result.steps, title=f"{sc.name} over time")
        table = pd.DataFrame([result.summary()])
        write_report(report, f"Run: {sc.name}", [figure], table, [sc])
