"""One self-contained HTML page for a study (layer L5): figures, the summary table, the scenarios.

The page carries plotly's JavaScript inline (no network needed to open it), each scenario as YAML
(re-runnable), the study's table with latencies in ms and fractions in %, and for each hardware profile
whether its numbers are calibrated (a table at ``hardware_profiles/calibration/<profile>.json``) or
spec-sheet only (roofline with efficiency factors).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.resources import hardware_profiles_dir

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f3f3f3; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; }
"""


def calibration_status(hardware: Sequence[str]) -> dict[str, bool]:
    """Profile name (or the stem of a profile path) -> whether a calibration table exists for it."""
    folder = hardware_profiles_dir() / "calibration"
    status = {}
    for name in hardware:
        stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
        status[stem] = (folder / f"{stem}.json").is_file()
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


def _calibration_html(hardware: Sequence[str]) -> str:
    items = []
    for name, calibrated in calibration_status(hardware).items():
        what = (
            "calibrated: a measured calibration table exists (hardware_profiles/calibration/"
            f"{html.escape(name)}.json)"
            if calibrated
            else "spec-only: roofline from datasheet numbers and efficiency factors, not calibrated "
            "against measured kernels; treat absolute times as estimates"
        )
        items.append(f"<li><b>{html.escape(name)}</b>: {what}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def report_html(
    title: str,
    figures: Sequence[Any],
    table: pd.DataFrame,
    scenarios: Mapping[str, str],
    hardware: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """The page as a string: ``figures`` are plotly figures, ``scenarios`` maps a label to its YAML."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Trilemma what-if study, generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. '
        "Latencies in ms, fractions in %, rates in requests per second.</p>",
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    parts.append("<h2>Hardware calibration</h2>" + _calibration_html(hardware))
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
