"""The ``trilemma`` command (layer L6): the only module that reads argv and writes result files.

Every SimulatorError is printed as one paragraph (field, value, what is valid) with exit code 2 and
no traceback; see ``main``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator.config import Scenario
from simulator.errors import ConfigError, SimulatorError
from simulator.hardware import list_hardware, load_hardware
from simulator.model import list_models, load_model
from simulator.simulate import SimulationResult, simulate
from simulator.workload import list_traces, load_trace

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
        ("wall time", f"{result.wall_s:.2f} s"),
    ]
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; a SimulatorError becomes one paragraph on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except SimulatorError as exc:
        message = Text("error: ", style="bold red") + Text(str(exc))
        Console(stderr=True, soft_wrap=True).print(message, highlight=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click's usage errors and aborts carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
