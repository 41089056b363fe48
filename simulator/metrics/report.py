"""One self-contained HTML page for a study (layer L5): figures, the summary table, the scenarios.

The page carries plotly's JavaScript inline (no network needed to open it), each scenario as YAML
(re-runnable), the study's table with latencies in ms and fractions in %, and for each hardware profile
whether the cost model priced steps from a calibration table (``hardware_profiles/calibration/``) or
from the spec sheet only (roofline with efficiency factors).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from simulator.config import Scenario
from simulator.resolve import resolve

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f3f3f3; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; }
"""


def calibration_status(scenarios: Sequence[Scenario]) -> dict[str, str | None]:
    """Hardware profile name -> the calibration table's source its cost model uses, None if spec-only.

    Read from the resolved cost model (``CostModel.calibrated`` / ``calibration_source``), i.e. what the
    simulation actually priced steps with.
    """
    status: dict[str, str | None] = {}
    for scenario in scenarios:
        resolved = resolve(scenario)
        cost = resolved.cost
        status[resolved.hardware.name] = (
            (cost.calibration_source or "calibration table") if cost.calibrated else None
        )
    return status


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Report units: ``*_s`` columns in ms (``*_ms``), ``*_frac`` in % (``*_pct``), floats rounded."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        values = frame[col]
        seconds = col.endswith("_s") and not col.endswith(("_per_s", "_tok_s"))
        if seconds and pd.api.types.is_numeric_dtype(values) and values.dtype != bool:
            out[col.removesuffix("_s") + "_ms"] = (values.astype(float) * 1e3).round(2)
        elif col.endswith("_frac") and pd.api.types.is_numeric_dtype(values):
            out[col.removesuffix("_frac") + "_pct"] = (values.astype(float) * 100).round(1)
        elif pd.api.types.is_float_dtype(values):
            out[col] = values.round(4)
        else:
            out[col] = values
    return out


def _calibration_html(calibration: Mapping[str, str | None]) -> str:
    items = []
    for name, source in calibration.items():
        what = (
            f"calibrated: op times come from a measured calibration table ({html.escape(source)})"
            if source is not None
            else "spec-only: roofline from datasheet numbers and efficiency factors, not calibrated "
            "against measured kernels; treat absolute times as estimates"
        )
        items.append(f'<li class="calibration"><b>{html.escape(name)}</b>: {what}</li>')
    return "<ul>" + "".join(items) + "</ul>"


def scenario_report(
    title: str,
    figures: Sequence[Any],
    table: pd.DataFrame,
    scenarios: Sequence[Scenario],
    notes: Sequence[str] = (),
) -> str:
    """``report_html`` for scenarios: each one's YAML, and the calibration status of their hardware."""
    yamls = {sc.name: sc.to_yaml() for sc in scenarios}
    return report_html(title, figures, table, yamls, calibration_status(scenarios), notes=notes)


def report_html(
    title: str,
    figures: Sequence[Any],
    table: pd.DataFrame,
    scenarios: Mapping[str, str],
    calibration: Mapping[str, str | None],
    notes: Sequence[str] = (),
) -> str:
    """The page as a string: ``figures`` are plotly figures, ``scenarios`` maps a label to its YAML,
    ``calibration`` a hardware profile to its calibration source (None: spec-only)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Trilemma what-if study, generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. '
        "Latencies in ms, fractions in %, rates in requests per second.</p>",
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    parts.append("<h2>Hardware calibration</h2>" + _calibration_html(calibration))
    for index, fig in enumerate(figures):
        parts.append(
            fig.to_html(full_html=False, include_plotlyjs=index == 0, div_id=f"trilemma-figure-{index}")
        )
    parts.append("<h2>Summary</h2>")
    parts.append(display_frame(table).to_html(index=False, border=0, na_rep="-"))
    parts.append("<h2>Scenarios</h2>")
    for label, text in scenarios.items():
        parts.append(f"<h3>{html.escape(label)}</h3><pre>{html.escape(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
