"""The request table (what the engine issues) and ``build_workload``, the one entry point that makes it.

A workload is columnar: three numpy arrays of equal length, so a million requests cost ~24 MB and are
generated in well under a second. Units: ``arrival_s`` in simulated seconds from the start of the run,
token counts in tokens.

Which generator runs is picked by ``WorkloadConfig.arrival``:

=========== ============================================================ ==========================
arrival     arrival_s                                                    lengths
=========== ============================================================ ==========================
poisson     cumulative exponential gaps (first request at the first gap) input/output_tokens specs
gamma       cumulative gamma gaps of mean 1/rate and CV ``cv``           input/output_tokens specs
burst       all 0.0 (offline throughput benchmark)                       input/output_tokens specs
concurrency all 0.0; the engine keeps ``concurrency`` requests in flight input/output_tokens specs
trace       the trace's timestamps minus the first (optionally rescaled) the trace's own columns
=========== ============================================================ ==========================

Randomness comes from ``simulator.rng.stream(seed, purpose)`` with one stream per purpose
("arrivals", "input_lengths", "output_lengths"), so changing the output-length distribution leaves the
arrival times and the input lengths unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from simulator.config import MAX_TOKENS_PER_REQUEST, WorkloadConfig
from simulator.errors import ConfigError
from simulator.rng import stream
from simulator.workload.arrivals import ARRIVAL_GENERATORS, rescale_to_rate
from simulator.workload.lengths import sample_lengths
from simulator.workload.prefixes import PREFIX_ID_STRIDE, sample_prefix_ids
from simulator.workload.sessions import session_columns
from simulator.workload.traces import load_trace


@dataclass(frozen=True, eq=False)
class RequestTable:
    """Requests in order of issue, columnar (numpy) so a million of them is cheap.

    ``arrival_s`` is float64 and non-decreasing (all 0.0 for burst and for concurrency, where the
    engine issues them in a closed loop); ``input_tokens`` and ``output_tokens`` are int64 in
    [1, MAX_TOKENS_PER_REQUEST]. ``closed_loop_clients`` is the number of clients kept in flight for
    ``arrival = concurrency`` and None otherwise. With request classes, ``class_id`` (int16) indexes
    ``class_names`` and ``class_priorities`` per request; without, it is None. The arrays are made
    read-only.
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    closed_loop_clients: int | None = None
    class_id: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    class_priorities: tuple[int, ...] = ()
    prefix_id: np.ndarray | None = None  # int32 per request, -1 for none; None without prefixes
    prefix_tokens: np.ndarray | None = None  # int64 per request: its prefix's part of input_tokens
    # Multi-turn sessions (workload.sessions): the row of the same session's next turn (-1: none), and
    # the think time before each turn (a later turn is issued that long after the turn before it ends)
    next_turn: np.ndarray | None = None
    think_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        num = None
        for name, dtype in (
            ("arrival_s", np.float64),
            ("input_tokens", np.int64),
            ("output_tokens", np.int64),
        ):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != dtype:
                got = f"{type(arr).__name__} {getattr(arr, 'dtype', '')} ndim={getattr(arr, 'ndim', '?')}"
                raise ValueError(
                    f"RequestTable.{name} must be a 1-D numpy array of {dtype.__name__}; got {got}"
                )
            if num is not None and arr.shape[0] != num:
                raise ValueError(f"RequestTable.{name} has {arr.shape[0]} entries but arrival_s has {num}")
            num = arr.shape[0]
        _check_arrivals(self.arrival_s)
        for name in ("input_tokens", "output_tokens"):
            _check_tokens(name, getattr(self, name))
        if self.closed_loop_clients is not None and self.closed_loop_clients < 1:
            raise ValueError(
                f"RequestTable.closed_loop_clients = {self.closed_loop_clients} must be >= 1 or None"
            )
        self._check_classes(num or 0)
        self._check_prefixes(num or 0)
        self._check_sessions(num or 0)
        for name in ("arrival_s", "input_tokens", "output_tokens"):
            getattr(self, name).setflags(write=False)

    def _check_prefixes(self, num: int) -> None:
        if (self.prefix_id is None) != (self.prefix_tokens is None):
            raise ValueError("RequestTable.prefix_id and prefix_tokens must be given together")
        if self.prefix_id is None or self.prefix_tokens is None:
            return
        if self.prefix_id.shape != (num,) or self.prefix_tokens.shape != (num,):
            raise ValueError(f"RequestTable.prefix_id and prefix_tokens must have {num} entries")
        if np.any(self.prefix_tokens < 0) or np.any(self.prefix_tokens >= self.input_tokens):
            raise ValueError("RequestTable.prefix_tokens must lie in [0, input_tokens)")
        self.prefix_id.setflags(write=False)
        self.prefix_tokens.setflags(write=False)

    def _check_sessions(self, num: int) -> None:
        if (self.next_turn is None) != (self.think_s is None):
            raise ValueError("RequestTable.next_turn and think_s must be given together")
        if self.next_turn is None or self.think_s is None:
            return
        if self.next_turn.shape != (num,) or self.think_s.shape != (num,):
            raise ValueError(f"RequestTable.next_turn and think_s must have {num} entries")
        later = self.next_turn >= 0
        if np.any(self.next_turn[later] <= np.flatnonzero(later)) or np.any(self.next_turn >= num):
            raise ValueError("RequestTable.next_turn must point to a later row (or be -1)")
        if not np.all(np.isfinite(self.think_s)) or np.any(self.think_s < 0):
            raise ValueError("RequestTable.think_s must be finite and >= 0")
        self.next_turn.setflags(write=False)
        self.think_s.setflags(write=False)

    @property
    def is_follow_up(self) -> np.ndarray | None:
        """Per request, whether it is a later turn of a session (issued when the turn before ends)."""
        if self.next_turn is None:
            return None
        follow = np.zeros(len(self.next_turn), dtype=bool)
        follow[self.next_turn[self.next_turn >= 0]] = True
        return follow

    def _check_classes(self, num: int) -> None:
        if len(self.class_names) != len(self.class_priorities):
            raise ValueError("RequestTable.class_names and class_priorities must have the same length")
        if self.class_id is None:
            if self.class_names:
                raise ValueError("RequestTable.class_names is set but class_id is None")
            return
        cid = self.class_id
        if not isinstance(cid, np.ndarray) or cid.dtype != np.int16 or cid.shape != (num,):
            raise ValueError(f"RequestTable.class_id must be a 1-D int16 array of {num} entries")
        if num and (cid.min() < 0 or cid.max() >= len(self.class_names)):
            raise ValueError(f"RequestTable.class_id must index class_names ({len(self.class_names)} names)")
        cid.setflags(write=False)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame: arrival_s, input_tokens, output_tokens (and request_class)."""
        frame = pd.DataFrame(
            {
                "arrival_s": self.arrival_s,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
            }
        )
        if self.class_id is not None:
            frame["request_class"] = pd.Categorical.from_codes(self.class_id, pd.Index(self.class_names))
        if self.prefix_id is not None:
            frame["prefix_id"] = self.prefix_id
            frame["prefix_tokens"] = self.prefix_tokens
        if self.next_turn is not None:
            frame["next_turn"] = self.next_turn
            frame["think_s"] = self.think_s
        return frame


def _check_arrivals(arrival_s: np.ndarray) -> None:
    if arrival_s.size == 0:
        return
    if not np.all(np.isfinite(arrival_s)) or arrival_s[0] < 0:
        raise ValueError("RequestTable.arrival_s must be finite and >= 0")
    steps = np.diff(arrival_s)
    if np.any(steps < 0):
        i = int(np.argmax(steps < 0)) + 1
        raise ValueError(
            f"RequestTable.arrival_s must be non-decreasing; entry {i} is {arrival_s[i]} "
            f"after {arrival_s[i - 1]}"
        )


def _check_tokens(name: str, tokens: np.ndarray) -> None:
    if tokens.size == 0:
        return
    low, high = int(tokens.min()), int(tokens.max())
    if low < 1 or high > MAX_TOKENS_PER_REQUEST:
        raise ValueError(
            f"RequestTable.{name} must lie in [1, {MAX_TOKENS_PER_REQUEST}]; "
            f"found values from {low} to {high}"
        )


def build_workload(workload: WorkloadConfig, seed: int) -> RequestTable:
    """The requests a scenario sends: same (workload, seed) -> identical arrays.

    For ``arrival = trace`` the lengths come from the trace and ``input_tokens``/``output_tokens``
    (and ``cv``, ``concurrency``) are ignored; ``seed`` is unused since nothing is drawn.
    """
    if workload.classes:
        return _mixed(workload, seed)
    return _build_one(workload, seed, None)


def _build_one(workload: WorkloadConfig, seed: int, substream: int | None) -> RequestTable:
    if workload.sessions is not None:
        return _sessions(workload, seed, substream)
    table = _unprefixed(workload, seed, substream)
    prefix = workload.prefix
    if prefix is None:
        return table
    prefix_id = sample_prefix_ids(prefix, len(table), stream(seed, "prefixes", substream))
    if substream:
        prefix_id += substream * PREFIX_ID_STRIDE
    return replace(
        table,
        input_tokens=table.input_tokens + prefix.tokens,
        prefix_id=prefix_id,
        prefix_tokens=np.full(len(table), prefix.tokens, dtype=np.int64),
    )


def _sessions(workload: WorkloadConfig, seed: int, substream: int | None) -> RequestTable:
    """Arrivals start sessions; one row per turn (``simulator.workload.sessions``)."""
    assert workload.num_requests is not None  # the config validator guarantees it
    start_s = ARRIVAL_GENERATORS[workload.arrival](
        workload, workload.num_requests, stream(seed, "arrivals", substream)
    )
    columns = session_columns(workload, start_s, seed, substream)
    if substream:
        columns["prefix_id"] += substream * PREFIX_ID_STRIDE
    return RequestTable(
        columns["arrival_s"],
        columns["input_tokens"],
        columns["output_tokens"],
        prefix_id=columns["prefix_id"],
        prefix_tokens=columns["prefix_tokens"],
        next_turn=columns["next_turn"],
        think_s=columns["think_s"],
    )


def _unprefixed(workload: WorkloadConfig, seed: int, substream: int | None) -> RequestTable:
    if workload.arrival == "trace":
        return _from_trace(workload)
    num = workload.num_requests
    if num is None:
        raise ConfigError(
            "workload.num_requests", None, f"arrival {workload.arrival!r} needs a request count"
        )
    input_tokens = sample_lengths(workload.input_tokens, num, stream(seed, "input_lengths", substream))
    output_tokens = sample_lengths(workload.output_tokens, num, stream(seed, "output_lengths", substream))
    arrival_s = ARRIVAL_GENERATORS[workload.arrival](workload, num, stream(seed, "arrivals", substream))
    clients = workload.concurrency if workload.arrival == "concurrency" else None
    return RequestTable(arrival_s, input_tokens, output_tokens, closed_loop_clients=clients)


def _mixed(workload: WorkloadConfig, seed: int) -> RequestTable:
    """Each class's requests (drawn from its own streams), merged in order of arrival."""
    parts = [_build_one(c, seed, k) for k, c in enumerate(workload.classes)]
    class_id = np.concatenate([np.full(len(t), k, dtype=np.int16) for k, t in enumerate(parts)])
    arrival_s = np.concatenate([t.arrival_s for t in parts])
    order = np.argsort(arrival_s, kind="stable")  # ties: the earlier class first
    prefix_id = prefix_tokens = None
    if any(t.prefix_id is not None for t in parts):
        prefix_id = np.concatenate([_or_none(t.prefix_id, len(t), -1) for t in parts])[order]
        prefix_tokens = np.concatenate([_or_none(t.prefix_tokens, len(t), 0) for t in parts])[order]
    next_turn = think_s = None
    if any(t.next_turn is not None for t in parts):
        next_turn, think_s = _merged_sessions(parts, order)
    return RequestTable(
        arrival_s[order],
        np.concatenate([t.input_tokens for t in parts])[order],
        np.concatenate([t.output_tokens for t in parts])[order],
        prefix_id=prefix_id,
        prefix_tokens=prefix_tokens,
        next_turn=next_turn,
        think_s=think_s,
        class_id=class_id[order],
        class_names=tuple(c.name for c in workload.classes),
        class_priorities=tuple(c.priority for c in workload.classes),
    )


def _merged_sessions(parts: list[RequestTable], order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes' next_turn (renumbered to the merged rows) and think_s columns, in merged order."""
    offsets = np.cumsum([0] + [len(t) for t in parts[:-1]])
    old_next = np.concatenate(
        [
            np.full(len(t), -1) if t.next_turn is None else np.where(t.next_turn >= 0, t.next_turn + off, -1)
            for t, off in zip(parts, offsets, strict=True)
        ]
    ).astype(np.int64)
    think_s = np.concatenate([t.think_s if t.think_s is not None else np.zeros(len(t)) for t in parts])
    new_row = np.empty(len(order), dtype=np.int64)
    new_row[order] = np.arange(len(order))
    merged = old_next[order]
    return np.where(merged >= 0, new_row[np.maximum(merged, 0)], -1), think_s[order]


def _or_none(column: np.ndarray | None, num: int, fill: int) -> np.ndarray:
    return column if column is not None else np.full(num, fill, dtype=np.int32 if fill < 0 else np.int64)


def _from_trace(workload: WorkloadConfig) -> RequestTable:
    """The first ``num_requests`` rows of the trace, rescaled to ``rate_per_s`` when that is set.

    Asking for more requests than the trace holds replays it again after its end (shifted by its span
    plus one mean gap), so a one-hour trace can drive a longer or larger run with the same statistics.
    """
    assert workload.trace is not None  # the config validator guarantees it
    frame = load_trace(workload.trace, max_rows=workload.num_requests)
    arrival_s = frame["arrival_s"].to_numpy(dtype=np.float64, copy=True)
    input_tokens = frame["input_tokens"].to_numpy(dtype=np.int64, copy=True)
    output_tokens = frame["output_tokens"].to_numpy(dtype=np.int64, copy=True)
    wanted = workload.num_requests
    if wanted is not None and len(arrival_s) < wanted:
        arrival_s, input_tokens, output_tokens = _wrap_around(arrival_s, input_tokens, output_tokens, wanted)
    if workload.rate_per_s is not None:
        arrival_s = rescale_to_rate(arrival_s, workload.rate_per_s)
    return RequestTable(arrival_s, input_tokens, output_tokens)


def _wrap_around(
    arrival_s: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray, wanted: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repeat a trace back to back until it has ``wanted`` requests."""
    num_rows = len(arrival_s)
    span_s = float(arrival_s[-1] - arrival_s[0])
    period_s = span_s + (span_s / (num_rows - 1) if num_rows > 1 else 1.0)
    repeats = -(-wanted // num_rows)
    offsets_s = np.repeat(np.arange(repeats, dtype=np.float64) * period_s, num_rows)[:wanted]
    times = np.tile(arrival_s, repeats)[:wanted] + offsets_s
    return times, np.tile(input_tokens, repeats)[:wanted], np.tile(output_tokens, repeats)[:wanted]
