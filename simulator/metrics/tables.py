"""Run records as pandas DataFrames: one row per request, one row per step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.engine.records import STATUS_NAMES, RunRecords


def requests_frame(records: RunRecords) -> pd.DataFrame:
    """One row per request, in issue order, with its latencies in seconds.

    Columns: request_id, arrival_s, input_tokens, output_tokens, replica, status (finished |
    rejected | unfinished), reject_reason, first_token_s, finish_s, ttft_s, e2e_s, tpot_s (mean time
    per output token after the first), num_preemptions. Latencies are NaN for requests not finished.
    With disaggregated pools: replica is the decode replica; prefill_replica, kv_wait_s, kv_transfer_s
    (see ``simulator.metrics.disaggregation``).
    """
    log = records.requests
    ttft_s = log.first_token_s - log.arrival_s
    e2e_s = log.finish_s - log.arrival_s
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot_s = np.where(
            log.output_tokens > 1, (log.finish_s - log.first_token_s) / (log.output_tokens - 1), np.nan
        )
    names = [STATUS_NAMES[k] for k in sorted(STATUS_NAMES)]
    status = pd.Categorical(np.array(names, dtype=object)[log.status], categories=names)
    reasons = np.full(len(log.arrival_s), "", dtype=object)
    for i, reason in log.reject_reason.items():
        reasons[i] = reason
    frame = pd.DataFrame(
        {
            "request_id": np.arange(len(log.arrival_s), dtype=np.int64),
            "arrival_s": log.arrival_s,
            "input_tokens": log.input_tokens,
            "output_tokens": log.output_tokens,
            "replica": log.replica,
            "status": status,
            "reject_reason": reasons,
            "first_token_s": log.first_token_s,
            "finish_s": log.finish_s,
            "ttft_s": ttft_s,
            "e2e_s": e2e_s,
            "tpot_s": tpot_s,
            "num_preemptions": log.num_preemptions,
        }
    )
    transfers = records.transfers
    if transfers is not None:  # disaggregated pools
        frame["prefill_replica"] = transfers.prefill_replica
        frame["kv_wait_s"] = transfers.kv_wait_s
        frame["kv_transfer_s"] = transfers.kv_transfer_s
    if log.class_id is not None:
        frame.insert(
            1, "request_class", pd.Series(pd.Categorical.from_codes(log.class_id, pd.Index(log.class_names)))
        )
    return frame


def steps_frame(records: RunRecords) -> pd.DataFrame:
    """One row per replica step: replica, start_s, duration_s, num_seqs, num_prefill_tokens,
    num_decode_tokens, num_preempted, kv_used_blocks (held during the step, after the policy allocated
    its blocks), flops, num_bytes."""
    frame = pd.DataFrame(records.steps.columns())
    # The engine logs a run of decode steps when the run ends: order rows by time, then replica.
    return frame.sort_values(["start_s", "replica"], kind="stable", ignore_index=True)
