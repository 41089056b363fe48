"""Plotly figures of the what-if studies (layer L5; plotly is imported only under ``simulator/metrics``).

Inputs are the DataFrames of ``simulator.studies`` and ``KneeResult.checks_frame()`` (seconds, req/s,
tokens/s); the figures show milliseconds. Every point has a hover label with its numbers.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simulator.config import SLOConfig

_LATENCY_TRACES = (
    ("ttft_p50_s", "TTFT p50"),
    ("ttft_p99_s", "TTFT p99"),
    ("itl_p99_s", "ITL p99"),
    ("tpot_p99_s", "TPOT p99"),
    ("e2e_p99_s", "E2E p99"),
)
_SLO_LINES = (("ttft_p99_s", "TTFT SLO"), ("itl_p99_s", "ITL SLO"), ("e2e_p99_s", "E2E SLO"))


def _ms(series: pd.Series) -> list[float]:
    return [v * 1e3 for v in series.astype(float)]


def _add_slo_lines(fig: Any, slo: SLOConfig | None, **where: int) -> None:
    """Dashed horizontal lines at the SLO targets that are set (in ms)."""
    for key, label in _SLO_LINES:
        target = getattr(slo, key) if slo is not None else None
        if target is not None:
            fig.add_hline(
                y=target * 1e3,
                line_dash="dash",
                line_color="gray",
                annotation_text=f"{label} {target * 1e3:g} ms",
                **where,
            )


def curve_figure(frame: pd.DataFrame, slo: SLOConfig | None = None, title: str = "") -> Any:
    """Latency percentiles (log scale, ms) and throughput/goodput against the offered rate."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("latency vs offered load", "throughput vs offered load"),
        horizontal_spacing=0.1,
    )
    rate = frame["rate_per_s"]
    for key, label in _LATENCY_TRACES:
        if key in frame:
            fig.add_trace(
                go.Scatter(
                    x=rate,
                    y=_ms(frame[key]),
                    mode="lines+markers",
                    name=label,
                    hovertemplate=f"{label}: %{{y:.1f}} ms at %{{x:.2f}} req/s<extra></extra>",
                ),
                row=1,
                col=1,
            )
    _add_slo_lines(fig, slo, row=1, col=1)
    for key, label in (("request_throughput_rps", "throughput"), ("goodput_rps", "goodput (meets SLO)")):
        fig.add_trace(
            go.Scatter(
                x=rate,
                y=frame[key],
                mode="lines+markers",
                name=label,
                hovertemplate=f"{label}: %{{y:.2f}} req/s at %{{x:.2f}} req/s offered<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(type="log", title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="completed req/s", row=1, col=2)
    fig.update_xaxes(title_text="offered rate (req/s)")
    fig.update_layout(title=title or "latency-load curve", hovermode="closest", height=480)
    return fig


def knee_figure(checks: pd.DataFrame, knee_rate_per_s: float, slo: SLOConfig | None = None) -> Any:
    """Every rate the knee search tried: its p99 latencies (log ms), pass or fail, and the knee."""
    fig = go.Figure()
    ok = checks["meets_slo"].astype(bool)
    for key, label in (("ttft_p99_s", "TTFT p99"), ("itl_p99_s", "ITL p99"), ("e2e_p99_s", "E2E p99")):
        fig.add_trace(
            go.Scatter(
                x=checks["rate_per_s"],
                y=_ms(checks[key]),
                mode="lines+markers",
                name=label,
                marker={"symbol": ["circle" if m else "x" for m in ok], "size": 10},
                customdata=[
                    ["meets SLO" if m else f"misses: {f}"] for m, f in zip(ok, checks["failed"], strict=True)
                ],
                hovertemplate=f"{label}: %{{y:.1f}} ms at %{{x:.3g}} req/s, "
                "%{customdata[0]}<extra></extra>",
            )
        )
    _add_slo_lines(fig, slo)
    if math.isfinite(knee_rate_per_s):
        fig.add_vline(
            x=knee_rate_per_s,
            line_color="green",
            annotation_text=f"knee {knee_rate_per_s:.3g} req/s",
        )
    fig.update_yaxes(type="log", title_text="ms")
    fig.update_xaxes(type="log", title_text="offered rate (req/s); circles meet the SLO, crosses miss it")
    fig.update_layout(title="knee search", hovermode="closest", height=460)
    return fig


def compare_figure(frame: pd.DataFrame, latency_key: str = "e2e_p99_s") -> Any:
    """Throughput per GPU against a latency percentile, one point per configuration, Pareto front joined."""
    fig = go.Figure()
    hover = (
        "%{text}<br>%{x:.0f} tok/s per GPU<br>"
        + latency_key
        + " %{y:.1f} ms<br>$%{customdata[0]:.3f} per Mtok<extra></extra>"
    )
    cost = frame["cost_usd_per_mtok"] if "cost_usd_per_mtok" in frame else pd.Series([math.nan] * len(frame))
    fig.add_trace(
        go.Scatter(
            x=frame["output_tok_s_per_gpu"],
            y=_ms(frame[latency_key]),
            mode="markers+text",
            text=frame["name"],
            textposition="top center",
            customdata=[[c] for c in cost],
            marker={"size": 12, "color": ["crimson" if p else "steelblue" for p in frame["pareto"]]},
            name="configurations",
            hovertemplate=hover,
        )
    )
    front = frame[frame["pareto"]].sort_values("output_tok_s_per_gpu")
    fig.add_trace(
        go.Scatter(
            x=front["output_tok_s_per_gpu"],
            y=_ms(front[latency_key]),
            mode="lines",
            line={"color": "crimson", "dash": "dot"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title_text="output tokens/s per GPU (higher is better)")
    fig.update_yaxes(type="log", title_text=f"{latency_key.removesuffix('_s')} (ms, lower is better)")
    fig.update_layout(title="throughput vs latency (red: Pareto front)", hovermode="closest", height=480)
    return fig


MAX_POINTS = 4000  # per trace: a report stays a few MB however long the run


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_POINTS rows, evenly spaced (every k-th row), so a long run still loads quickly."""
    step = max(1, -(-len(frame) // MAX_POINTS))
    return frame.iloc[::step]


def run_figure(requests: pd.DataFrame, steps: pd.DataFrame, title: str = "") -> Any:
    """One run over time: each request's TTFT and E2E (log ms) at its arrival; batch size per replica."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("latency of each request, at its arrival", "batch size per step"),
    )
    done = _thin(requests[requests["status"] == "finished"])
    for key, label in (("ttft_s", "TTFT"), ("e2e_s", "E2E")):
        fig.add_trace(
            go.Scatter(
                x=done["arrival_s"],
                y=_ms(done[key]),
                mode="markers",
                marker={"size": 4},
                name=label,
                customdata=done["request_id"],
                hovertemplate=f"request %{{customdata}}: {label} %{{y:.1f}} ms, arrived %{{x:.2f}} s"
                "<extra></extra>",
            ),
            row=1,
            col=1,
        )
    for replica, rows in steps.groupby("replica", sort=True):
        rows = _thin(rows)
        fig.add_trace(
            go.Scatter(
                x=rows["start_s"],
                y=rows["num_seqs"],
                mode="lines",
                line={"width": 1},
                name=f"replica {replica}",
                hovertemplate=f"replica {replica}: batch %{{y}} at %{{x:.2f}} s<extra></extra>",
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(type="log", title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="sequences", row=2, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=2, col=1)
    fig.update_layout(title=title or "run over time", hovermode="closest", height=640)
    return fig


def autoscale_figure(hourly: pd.DataFrame, title: str = "") -> Any:
    """Per hour of the day: paid replicas of each policy (with the arrival rate) and SLO attainment."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        specs=[[{"secondary_y": True}], [{}]],
        subplot_titles=("paid replicas per hour", "SLO attainment per hour"),
    )
    for policy, rows in hourly.groupby("policy", sort=False):
        fig.add_trace(
            go.Scatter(
                x=rows["hour"],
                y=rows["mean_paid_replicas"],
                mode="lines",
                line={"shape": "hv"},
                name=f"{policy}: replicas",
                hovertemplate=f"{policy}: %{{y:.2f}} replicas in hour %{{x}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=rows["hour"],
                y=[v * 100 for v in rows["slo_attainment_frac"]],
                mode="lines+markers",
                name=f"{policy}: SLO met",
                hovertemplate=f"{policy}: %{{y:.1f}} % met the SLO in hour %{{x}}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    first = hourly[hourly["policy"] == hourly["policy"].iloc[0]]
    fig.add_trace(
        go.Scatter(
            x=first["hour"],
            y=first["arrival_rate_per_s"],
            mode="lines",
            line={"dash": "dot", "color": "gray"},
            name="arrivals (req/s)",
            hovertemplate="%{y:.2f} req/s in hour %{x}<extra></extra>",
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    fig.update_yaxes(title_text="replicas", row=1, col=1)
    fig.update_yaxes(title_text="req/s", row=1, col=1, secondary_y=True)
    fig.update_yaxes(title_text="% of requests", row=2, col=1)
    fig.update_xaxes(title_text="hour of the day", row=2, col=1)
    fig.update_layout(title=title or "autoscaling over a day", hovermode="x unified", height=600)
    return fig
