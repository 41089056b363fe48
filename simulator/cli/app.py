"""The typer application objects and helpers every ``trilemma`` command shares."""

from __future__ import annotations

from typing import Any

import typer
import yaml

from simulator.errors import ConfigError

app = typer.Typer(
    help="Trilemma: simulate LLM inference clusters (throughput, latency, cost) before buying GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
hardware_app = typer.Typer(help="Hardware profiles (hardware_profiles/*.yaml).", no_args_is_help=True)
models_app = typer.Typer(help="Model specs in the catalog.", no_args_is_help=True)
traces_app = typer.Typer(help="Bundled request traces.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(models_app, name="models")
app.add_typer(traces_app, name="traces")

EXIT_BAD_INPUT = 2


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["layout.tp=4", "workload.rate_per_s=8.5"]`` -> dotted keys with YAML-typed values."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", item, "write dotted.key=value, for example --set layout.tp=4")
        try:
            overrides[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            overrides[key.strip()] = text
    return overrides
