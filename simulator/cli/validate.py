"""``trilemma validate``: predictions vs the bundled published measurements, with the error per row."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulator.cli.app import app
from simulator.validate import Comparison, load_measurements, median_abs_error_frac, validate


def _fmt(metric: str, value: float) -> str:
    return f"{value * 1e3:.1f} ms" if metric.endswith("_s") and metric != "output_tok_s" else f"{value:,.0f}"


def _table(rows: list[Comparison]) -> Table:
    table = Table(title="trilemma validate: MLPerf Inference closed division (simulator/measurements)")
    for name in (
        "row",
        "model",
        "hardware",
        "layout",
        "precision",
        "metric",
        "measured",
        "predicted",
        "error",
    ):
        table.add_column(name, justify="right" if name in ("measured", "predicted", "error") else "left")
    for c in rows:
        table.add_row(
            c.id.replace("-trt-", " ").replace("-server", " server").replace("-offline", " offline"),
            c.model,
            c.hardware,
            c.layout,
            c.precision,
            c.metric,
            _fmt(c.metric, c.measured),
            _fmt(c.metric, c.predicted),
            f"{c.error_frac:+.0%}",
        )
    return table


@app.command("validate")
def validate_command(
    only: Annotated[
        str | None, typer.Option("--only", help="rows whose id contains this text (e.g. h200, offline)")
    ] = None,
) -> None:
    """Simulate each published measurement and print predicted vs measured, with the median error."""
    rows = load_measurements()
    if only is not None:
        rows = [r for r in rows if only.lower() in r["id"]]
    console = Console(soft_wrap=True, width=200)
    if not rows:
        console.print(f"no row id contains {only!r}")
        return
    results = validate(rows)
    console.print(_table(results))
    for metric in sorted({c.metric for c in results}):
        subset = [c for c in results if c.metric == metric]
        console.print(
            f"median absolute error, {metric} ({len(subset)} rows): {median_abs_error_frac(subset):.1%}"
        )
    console.print(f"median absolute error, all {len(results)} rows: {median_abs_error_frac(results):.1%}")
