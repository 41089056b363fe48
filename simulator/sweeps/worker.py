"""What runs on a worker: one point's simulation, turned into a flat result row (never raises).

Status: ``ok``; ``invalid`` (the scenario raised a SimulatorError, e.g. a layout that does not fit);
``failed`` (any other exception, its type and message kept); ``timeout`` (ran past ``timeout_s``).
The timeout is enforced here with a real-time interval timer when the point runs in a process's main
thread (the local backend); elsewhere (Dask worker threads) the caller enforces it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simulator.config import Scenario
from simulator.errors import SimulatorError
from simulator.metrics import SUMMARY_KEYS
from simulator.simulate import simulate

STATUSES = ("ok", "invalid", "failed", "timeout")


class PointTimeoutError(Exception):
    """Raised inside a point's simulation when its time is up."""


def empty_row(point_id: str, status: str, error: str | None, wall_s: float) -> dict[str, Any]:
    """A result row without a summary (every summary key NaN)."""
    row: dict[str, Any] = {"point_id": point_id, "status": status, "error": error, "wall_s": wall_s}
    row.update(dict.fromkeys(SUMMARY_KEYS, math.nan))
    return row


@contextmanager
def _deadline(timeout_s: float | None) -> Iterator[None]:
    """Raise PointTimeoutError in the block after ``timeout_s`` (main thread of a process only)."""
    if timeout_s is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise PointTimeoutError(f"ran past the point timeout of {timeout_s:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_point(point_id: str, scenario: Scenario, timeout_s: float | None = None) -> dict[str, Any]:
    """Simulate one point; the row holds every scalar of its summary, or why there is none."""
    started = time.perf_counter()
    try:
        with _deadline(timeout_s):
            summary = simulate(scenario).summary()
    except PointTimeoutError as exc:
        return empty_row(point_id, "timeout", str(exc), time.perf_counter() - started)
    except SimulatorError as exc:
        return empty_row(point_id, "invalid", str(exc), time.perf_counter() - started)
    except Exception as exc:  # a bug in one point must not stop the sweep: keep it in the row
        return empty_row(point_id, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
    row = empty_row(point_id, "ok", None, time.perf_counter() - started)
    row.update({k: v for k, v in summary.items() if isinstance(v, int | float | str | bool)})
    return row
