"""``trilemma hardware|models|traces``: what the catalogs hold."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from simulator.cli.app import hardware_app, models_app, traces_app
from simulator.hardware import list_hardware, load_hardware
from simulator.model import list_models, load_model
from simulator.workload import list_traces, load_trace


@hardware_app.command("list")
def hardware_list() -> None:
    """The bundled hardware profiles, with their headline numbers."""
    table = Table("name", "accelerator", "HBM", "HBM bandwidth", "bf16 dense", "fp8 dense", "scale-up")
    table.columns[0].no_wrap = True
    for name in list_hardware():
        hw = load_hardware(name)
        fp8 = hw.peak_flops_per_s.get("fp8")
        table.add_row(
            name,
            hw.display_name,
            f"{hw.hbm_bytes / 1e9:.0f} GB",
            f"{hw.hbm_bandwidth_bytes_per_s / 1e12:.2f} TB/s",
            f"{hw.peak_flops_per_s['bf16'] / 1e12:,.0f} TFLOP/s",
            f"{fp8 / 1e12:,.0f} TFLOP/s" if fp8 else "-",
            f"{hw.scaleup_topology}, {hw.scaleup_bandwidth_bytes_per_s / 1e9:.0f} GB/s",
        )
    Console().print(table)


@hardware_app.command("show")
def hardware_show(name: Annotated[str, typer.Argument(help="profile name or YAML path")]) -> None:
    """Every field of a hardware profile, with its source."""
    sys.stdout.write(yaml.safe_dump(load_hardware(name).model_dump(mode="json"), sort_keys=False))


@models_app.command("list")
def models_list() -> None:
    """The bundled model specs, with their parameter counts."""
    table = Table("name", "params", "layers", "hidden", "heads / kv heads", "context")
    table.columns[0].no_wrap = True
    for name in list_models():
        m = load_model(name)
        table.add_row(
            name,
            f"{m.num_params / 1e9:.2f} B",
            str(m.num_layers),
            str(m.hidden_size),
            f"{m.num_attention_heads} / {m.num_kv_heads}",
            f"{m.max_position_embeddings:,}",
        )
    Console().print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="catalog name, spec YAML or HF config.json")],
) -> None:
    """A model spec (also for a Hugging Face config.json path), with its parameter count."""
    spec = load_model(name)
    data = spec.model_dump(mode="json")
    data["num_params"] = spec.num_params
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@traces_app.command("list")
def traces_list() -> None:
    """The bundled traces: requests, span, mean lengths."""
    table = Table("name", "requests", "span", "mean rate", "mean input", "mean output")
    table.columns[0].no_wrap = True
    for name in list_traces():
        frame = load_trace(name)
        span_s = float(frame["arrival_s"].iloc[-1])
        table.add_row(
            name,
            f"{len(frame):,}",
            f"{span_s / 60:.1f} min",
            f"{(len(frame) - 1) / span_s:.2f} req/s",
            f"{frame['input_tokens'].mean():.0f} tok",
            f"{frame['output_tokens'].mean():.0f} tok",
        )
    Console().print(table)
