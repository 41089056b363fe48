"""``trilemma sweep``: run every point of a sweep spec, streaming rows to a parquet dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from simulator.cli.app import app
from simulator.sweeps import run_sweep
from simulator.sweeps.store import RESULTS_DIR, ResultStore

EXIT_INTERRUPTED = 130


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="sweep YAML: base scenario plus grid / zip / random / seeds")],
    out: Annotated[Path, typer.Option("--out", help="folder for sweep.yaml and results/part-*.parquet")],
    backend: Annotated[str, typer.Option("--backend", help="local (processes) or dask")] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", help="worker processes (default: one per core)")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="dask scheduler, tcp://host:8786 (default: a LocalCluster)"),
    ] = None,
    point_timeout_s: Annotated[
        float | None, typer.Option("--point-timeout", help="seconds a point may run before it is 'timeout'")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="skip the points already in --out")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or summary line")] = False,
) -> None:
    """Run a parameter sweep; every point's summary (or why it has none) lands in OUT/results.

    Ctrl-C stops it, keeping every point that finished; run the same command with --resume to go on.
    """
    try:
        frame = run_sweep(
            spec,
            out,
            backend=backend,
            workers=workers,
            address=address,
            point_timeout_s=point_timeout_s,
            resume=resume,
            progress=not quiet,
        )
    except KeyboardInterrupt:
        kept = len(ResultStore(out).read())
        Console(stderr=True).print(
            f"interrupted: {kept} finished points kept in {out / RESULTS_DIR}/; "
            "run the same command with --resume to go on",
            highlight=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not quiet:
        counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
        text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no points"
        Console().print(f"{len(frame)} points ({text}); results in {out / RESULTS_DIR}/")
