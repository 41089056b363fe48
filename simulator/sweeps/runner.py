"""``run_sweep``: expand a spec, run its points on a backend, stream rows to parquet, return a frame.

One row per point: the axis values (dotted keys as column names), ``point_id`` (a hash of the resolved
scenario's YAML), ``status`` (ok | invalid | failed | timeout), ``error``, ``wall_s`` (seconds the
point took on its worker) and every scalar of the summary (NaN when the point has none).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.engine.compiled import COMPILED_AFTER_REQUESTS
from simulator.errors import ConfigError
from simulator.sweeps.backends import Backend, check_backend, make_backend
from simulator.sweeps.progress import SweepProgress
from simulator.sweeps.spec import SweepPoint, SweepSpec, base_mapping, expand, load_spec
from simulator.sweeps.store import ResultStore, axis_columns
from simulator.sweeps.worker import empty_row

FLUSH_EVERY_S = 5.0


def run_sweep(
    spec: SweepSpec | Mapping[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    point_timeout_s: float | None = None,
    resume: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every point of ``spec`` (a SweepSpec, a mapping or a sweep YAML path); one row per point.

    With ``out_dir``, rows are appended to ``out_dir/results/part-*.parquet`` as points finish and
    the spec is written to ``out_dir/sweep.yaml``; ``resume=True`` skips the points already there.
    A KeyboardInterrupt keeps the rows of the points that finished and is raised again.
    """
    if point_timeout_s is not None and point_timeout_s <= 0:
        raise ConfigError("--point-timeout", point_timeout_s, "give a positive number of seconds")
    check_backend(backend, workers, address)
    sweep, base_dir = load_spec(spec)
    points = _unique(expand(sweep, base_dir))
    columns = dict(zip((p.point_id for p in points), axis_columns([p.values for p in points]), strict=True))
    store = ResultStore(out_dir) if out_dir is not None else None
    done: set[str] = set()
    if store is not None:
        store.prepare(resume, sweep.model_dump(mode="json") | {"base": base_mapping(sweep, base_dir)})
        done = store.done_ids() if resume else set()
    todo = [p for p in points if p.point_id not in done]
    preload = _compiled_engine_pays(todo, workers)
    pool = make_backend(backend, workers, address, preload) if _any_valid(todo) else None
    with SweepProgress(len(todo), progress) as bar:
        rows = _collect(_run_points(todo, pool, point_timeout_s), columns, store, bar)
    frame = store.read() if store is not None else pd.DataFrame(rows)
    return _ordered(frame, points)


def _collect(
    stream: Generator[dict[str, Any], None, None],
    columns: Mapping[str, dict[str, Any]],
    store: ResultStore | None,
    bar: SweepProgress,
) -> list[dict[str, Any]]:
    """Every row of ``stream`` with its axis values; appended to ``store`` every FLUSH_EVERY_S seconds
    and once more at the end, also when interrupted (so nothing that finished is lost)."""
    rows: list[dict[str, Any]] = []
    buffer: list[dict[str, Any]] = []
    last_flush_s = time.monotonic()
    try:
        for result in stream:
            row = columns[result["point_id"]] | result
            rows.append(row)
            buffer.append(row)
            bar.advance(row["status"])
            if store is not None and time.monotonic() - last_flush_s >= FLUSH_EVERY_S:
                store.append(buffer)
                buffer, last_flush_s = [], time.monotonic()
    finally:
        stream.close()  # closes the backend, also when interrupted
        if store is not None:
            store.append(buffer)
    return rows


def _unique(points: list[SweepPoint]) -> list[SweepPoint]:
    """Points that resolve to the same scenario run once (the first keeps its place)."""
    seen: dict[str, SweepPoint] = {}
    for p in points:
        seen.setdefault(p.point_id, p)
    return list(seen.values())


def _compiled_engine_pays(points: Sequence[SweepPoint], workers: int | None) -> bool:
    """Whether each worker simulates enough requests to repay loading the compiled engine once
    (``COMPILED_AFTER_REQUESTS``), however short each point: then every worker loads it first."""
    total = sum(
        p.scenario.workload.num_requests or COMPILED_AFTER_REQUESTS for p in points if p.scenario is not None
    )
    return total >= COMPILED_AFTER_REQUESTS * (workers or os.cpu_count() or 1)


def _any_valid(points: Sequence[SweepPoint]) -> bool:
    return any(p.scenario is not None for p in points)


def _ordered(frame: pd.DataFrame, points: Sequence[SweepPoint]) -> pd.DataFrame:
    """This spec's rows in expansion order, one per point."""
    if frame.empty:
        return frame
    order = {p.point_id: i for i, p in enumerate(points)}
    frame = frame[frame["point_id"].isin(order)].drop_duplicates("point_id", keep="last")
    frame = frame.sort_values("point_id", key=lambda ids: ids.map(order), kind="stable")
    return frame.reset_index(drop=True)


def _run_points(
    points: Sequence[SweepPoint], backend: Backend | None, timeout_s: float | None
) -> Generator[dict[str, Any], None, None]:
    """Rows as points finish: invalid ones at once, the rest from the backend, ``num_slots`` at a time
    (times ``queue_depth`` without a point timeout)."""
    for p in points:
        if p.scenario is None:
            yield empty_row(p.point_id, "invalid", p.error, 0.0)
    if backend is None:
        return
    queue = [p for p in points if p.scenario is not None][::-1]
    in_flight: dict[Any, tuple[str, float]] = {}
    poll_s = 0.1 if timeout_s is not None and not backend.enforces_timeout else 1.0
    max_in_flight = backend.num_slots * (1 if timeout_s is not None else backend.queue_depth)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < max_in_flight:
                p = queue.pop()
                assert p.scenario is not None
                in_flight[backend.submit(p.point_id, p.scenario, timeout_s)] = (p.point_id, time.monotonic())
            for handle in backend.wait(list(in_flight), poll_s):
                point_id, started_s = in_flight.pop(handle)
                yield _result(backend, handle, point_id, started_s)
            if timeout_s is not None and not backend.enforces_timeout:
                yield from _expire(backend, in_flight, timeout_s)
    except BaseException:  # Ctrl-C, or the consumer stopped early: drop the points in flight
        backend.abort()
        raise
    backend.close()


def _result(backend: Backend, handle: Any, point_id: str, started_s: float) -> dict[str, Any]:
    try:
        return backend.result(handle)
    except Exception as exc:  # the worker itself died (or the task was lost): keep going
        return empty_row(point_id, "failed", f"{type(exc).__name__}: {exc}", time.monotonic() - started_s)


def _expire(
    backend: Backend, in_flight: dict[Any, tuple[str, float]], timeout_s: float
) -> Iterator[dict[str, Any]]:
    """Points in flight longer than ``timeout_s``: cancelled, recorded as 'timeout'."""
    now_s = time.monotonic()
    for handle, (point_id, started_s) in list(in_flight.items()):
        if now_s - started_s > timeout_s:
            backend.cancel(handle)
            del in_flight[handle]
            message = f"ran past the point timeout of {timeout_s:g} s"
            yield empty_row(point_id, "timeout", message, now_s - started_s)
