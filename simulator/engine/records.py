"""What a run records: one row per request, one per step, and inter-token gaps. Plain data, no simpy.

Columns are typed arrays (``array.array`` while the run appends, numpy at the end) so a million
requests and tens of millions of tokens stay in tens of megabytes.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulator.scheduling.batch import BatchPlan
    from simulator.step_shape import StepCost

STATUS_PENDING = 0  # not issued or not finished (a run that ends early)
STATUS_FINISHED = 1
STATUS_REJECTED = 2
STATUS_NAMES = {STATUS_PENDING: "unfinished", STATUS_FINISHED: "finished", STATUS_REJECTED: "rejected"}


@dataclass
class RequestLog:
    """Per request, indexed by request id (the row of the workload's request table)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    replica: np.ndarray
    num_preemptions: np.ndarray
    status: np.ndarray
    reject_reason: dict[int, str] = field(default_factory=dict)
    class_id: np.ndarray | None = None  # request class per request (indexes class_names), or None
    class_names: tuple[str, ...] = ()

    @classmethod
    def empty(cls, arrival_s: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray) -> RequestLog:
        """Columns for ``len(arrival_s)`` requests, nothing recorded yet."""
        num = len(arrival_s)
        return cls(
            arrival_s=np.array(arrival_s, dtype=np.float64),
            input_tokens=np.asarray(input_tokens, dtype=np.int64),
            output_tokens=np.asarray(output_tokens, dtype=np.int64),
            first_token_s=np.full(num, np.nan),
            finish_s=np.full(num, np.nan),
            replica=np.full(num, -1, dtype=np.int32),
            num_preemptions=np.zeros(num, dtype=np.int32),
            status=np.zeros(num, dtype=np.int8),
        )


STEP_COLUMNS = (
    "replica",
    "start_s",
    "duration_s",
    "num_seqs",
    "num_prefill_tokens",
    "num_decode_tokens",
    "num_preempted",
    "kv_used_blocks",
    "flops",
    "num_bytes",
)
_INT_STEP_COLUMNS = frozenset(STEP_COLUMNS) - {"start_s", "duration_s", "flops", "num_bytes"}


@dataclass
class StepLog:
    """One row per replica step, row-major in one float64 array (one ``extend`` per step).

    Counts are stored as floats, exact below 2**53; ``columns()`` gives them back as int64.
    """

    data: array[float] = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.data) // len(STEP_COLUMNS)

    def add(
        self,
        replica: int,
        start_s: float,
        duration_s: float,
        plan: BatchPlan,
        num_preempted: int,
        kv_used_blocks: int,
        cost: StepCost,
    ) -> None:
        """One step's row (decode runs write theirs as arrays: ``simulator.engine.decode_kernel``)."""
        self.data.extend(
            (
                replica,
                start_s,
                duration_s,
                plan.num_seqs,
                plan.num_prefill_tokens,
                plan.num_decode_tokens,
                num_preempted,
                kv_used_blocks,
                cost.flops,
                cost.num_bytes,
            )
        )  # in the order of STEP_COLUMNS

    def column(self, name: str) -> np.ndarray:
        """One column as numpy (a strided view of the log)."""
        table = np.frombuffer(self.data, dtype=np.float64).reshape(-1, len(STEP_COLUMNS))
        values = table[:, STEP_COLUMNS.index(name)]
        return values.astype(np.int64) if name in _INT_STEP_COLUMNS else values

    def columns(self) -> dict[str, np.ndarray]:
        """The log as numpy columns (copies)."""
        return {name: np.array(self.column(name)) for name in STEP_COLUMNS}


@dataclass
class ItlLog:
    """Inter-token gaps as (gap, number of sequences that saw it): one pair per group per step."""

    gap_s: array[float] = field(default_factory=lambda: array("d"))
    count: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class TransferLog:
    """Disaggregated pools, per request: where its prompt ran and how its KV reached a decode replica.

    ``kv_wait_s``: from the first token until a decode replica had KV blocks for it; ``kv_transfer_s``:
    from then until its KV had landed (link queueing, transfer, latency). NaN for requests never handed
    off (rejected, or done at their first token); ``prefill_replica`` is -1 for those never prefilled.
    """

    prefill_replica: np.ndarray
    kv_wait_s: np.ndarray
    kv_transfer_s: np.ndarray

    @classmethod
    def empty(cls, num_requests: int) -> TransferLog:
        """Columns for ``num_requests`` requests, nothing recorded yet."""
        return cls(
            np.full(num_requests, -1, dtype=np.int32),
            np.full(num_requests, np.nan),
            np.full(num_requests, np.nan),
        )


@dataclass
class RunRecords:
    """Everything a run recorded, plus the capacity figures the metrics need."""

    requests: RequestLog
    steps: StepLog
    itl: ItlLog
    num_replicas: int
    num_kv_blocks: int
    kv_peak_used_blocks: list[int]
    end_s: float
    prefix_tokens: int = 0  # prefix tokens of admitted prompts (with prefix caching on)
    prefix_hit_tokens: int = 0  # of which read from the prefix cache instead of computed
    transfers: TransferLog | None = None  # disaggregated pools only
    kv_blocks_by_replica: list[int] | None = None  # when replicas differ (pools); else num_kv_blocks each
    engine: str = "simpy"  # which engine played the run: "simpy" or "compiled" (simulator.engine.compiled)
