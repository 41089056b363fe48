"""``trilemma calibrate``: measure this machine's JAX device, fit an efficiency table, report the fit.

The ``calibration`` package (JAX) is imported only when the command runs, never by the simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.cli.app import app
from simulator.datafiles import read_text_bounded
from simulator.errors import ConfigError, DataFileError
from simulator.hardware.calibration import MAX_CALIBRATION_FILE_BYTES, calibration_dir


def _measure(quick: bool, sections: tuple[str, ...], console: Console) -> dict[str, Any]:
    try:
        from calibration import measure
    except ImportError as exc:
        raise ConfigError("calibrate", "jax", f"the calibration suite needs JAX installed ({exc})") from None
    info = measure.device_info()
    console.print(
        f"device: {info['device']} x{info['num_local_devices']} (backend {info['backend']}, "
        f"{info['driver']}, jax {info['jax_version']})"
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("calibrating", total=None)

        def step(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label[:48].ljust(48))

        raw: dict[str, Any] = measure.run_suite(quick, progress=step, sections=sections)
    return raw


def _read_raw(paths: list[Path]) -> dict[str, Any]:
    """One raw result from one or more ``calibration.measure`` outputs (sections run separately)."""
    from calibration.fit import check_raw
    from calibration.measure import merge_raw

    parts = []
    for path in paths:
        try:
            data = json.loads(read_text_bounded(path, MAX_CALIBRATION_FILE_BYTES))
        except (json.JSONDecodeError, OSError) as exc:
            raise DataFileError(path, f"cannot read raw measurements: {exc}") from None
        parts.append(check_raw(data, str(path)))
    try:
        raw: dict[str, Any] = merge_raw(parts)
    except ValueError as exc:
        raise DataFileError(", ".join(map(str, paths)), str(exc)) from None
    return raw


def _sections(text: str | None) -> tuple[str, ...]:
    from calibration.suite import SECTIONS

    if text is None:
        return SECTIONS
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    if not chosen or any(s not in SECTIONS for s in chosen):
        raise ConfigError("--sections", text, f"a comma-separated list of {', '.join(SECTIONS)}")
    return chosen


def _report(steps: list[Any], summary: dict[str, float], console: Console) -> None:
    table = Table("case", "measured", "spec-only", "error", "calibrated", "error", title="whole steps")
    for r in steps:
        table.add_row(
            r.label,
            f"{r.measured_s * 1e3:.3f} ms",
            f"{r.before_s * 1e3:.3f} ms",
            f"{r.before_pct:.1f} %",
            f"{r.after_s * 1e3:.3f} ms",
            f"{r.after_pct:.1f} %",
        )
    console.print(table)
    console.print(
        f"median |error|: {summary['median_before_pct']:.1f} % spec-only -> "
        f"{summary['median_after_pct']:.1f} % calibrated; worst: {summary['worst_before_pct']:.1f} % -> "
        f"{summary['worst_after_pct']:.1f} %"
    )


@app.command("calibrate")
def calibrate(
    profile: Annotated[
        str | None, typer.Option(help="hardware profile the table is for (default on CPU: cpu-<machine>)")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="tiny sizes (a CPU-friendly smoke run)")] = False,
    out: Annotated[
        Path | None, typer.Option(help="folder to write to (default: hardware_profiles/calibration)")
    ] = None,
    raw: Annotated[
        list[Path] | None,
        typer.Option(help="fit this `python -m calibration.measure` output, no measuring (repeatable)"),
    ] = None,
    save_raw: Annotated[Path | None, typer.Option(help="also write the raw measurements here")] = None,
    sections: Annotated[
        str | None,
        typer.Option(help="measure only these (comma-separated): gemm,attention,memory,collectives,steps"),
    ] = None,
) -> None:
    """Benchmark the JAX device, fit efficiency curves, write the table and print predicted vs measured."""
    console = Console()
    data = _read_raw(raw) if raw else _measure(quick, _sections(sections), console)
    if save_raw is not None:
        save_raw.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {save_raw}")
    from calibration.evaluate import calibrate as fit
    from calibration.evaluate import error_summary, write_outputs

    result = fit(data, profile)
    for skip in data.get("skipped", []):
        console.print(f"skipped {skip.get('what')}: {skip.get('reason')}")
    for path in write_outputs(result, out or calibration_dir()):
        console.print(f"wrote {path}")
    _report(result.steps, error_summary(result.steps), console)
