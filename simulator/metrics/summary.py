"""The run summary: throughput, latency percentiles, utilization and KV occupancy, as a flat dict.

Definitions (every latency in seconds):

- ``duration_s``: from the first arrival to the last finish.
- ``ttft``: first token time minus arrival (queueing included); ``e2e``: finish minus arrival.
- ``itl``: gaps between consecutive tokens of a request, pooled over all requests (a prefill step that
  stalls decoding shows up here); ``tpot``: per request, (finish - first token) / (output - 1).
- ``mean_batch_size``: sequences per step, averaged over steps.
- ``gpu_busy_frac``: replica-seconds spent in steps over replicas x duration.
- ``mfu_frac`` / ``mbu_frac``: FLOPs / bytes moved over what the cluster's GPUs could do at peak
  (dense FLOP/s of the compute dtype, HBM bytes/s) in the duration.
- ``kv_peak_frac``: the highest KV-block occupancy any replica reached.
- ``prefix_hit_frac``: of the shared-prefix tokens of the prompts admitted (recomputations included),
  the fraction read from the prefix cache instead of computed (NaN without prefixes).
- with request classes (``workload.classes``), per class ``<class>.<key>``: see ``metrics.classes``.
- with disaggregated pools: KV transfer and per-pool keys, see ``metrics.disaggregation``.
- ``calibrated``: whether step times came from a measured calibration table (``trilemma calibrate``)
  rather than the profile's spec sheet and constant derating; ``calibration_source``: the table's
  source, or ``"spec-only"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.engine.records import STATUS_FINISHED, STATUS_PENDING, STATUS_REJECTED, RunRecords
from simulator.metrics.classes import class_slos, class_summary
from simulator.metrics.disaggregation import cluster_peaks, kv_peak_frac, pool_summary
from simulator.metrics.quantiles import nan_quantile, weighted_quantile
from simulator.resolve import ResolvedScenario
from simulator.speculative import SpeculativeCostModel
from simulator.tradeoffs import tradeoff_summary

SUMMARY_KEYS = (
    "num_requests",
    "num_completed",
    "num_rejected",
    "duration_s",
    "request_throughput_rps",
    "output_throughput_tok_s",
    "input_throughput_tok_s",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "itl_p50_s",
    "itl_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "mean_batch_size",
    "gpu_busy_frac",
    "mfu_frac",
    "mbu_frac",
    "kv_peak_frac",
    "num_preemptions",
)


def summarize(resolved: ResolvedScenario, records: RunRecords) -> dict[str, Any]:
    """The summary dict (keys in ``SUMMARY_KEYS``, then a few extras)."""
    log = records.requests
    done = log.status == STATUS_FINISHED
    num_done = int(done.sum())
    issued = log.arrival_s[log.status != STATUS_PENDING]
    start_s = float(issued.min()) if issued.size else 0.0
    end_s = float(np.nanmax(log.finish_s)) if num_done else start_s
    duration_s = max(end_s - start_s, 0.0)
    per_s = 1.0 / duration_s if duration_s > 0 else 0.0  # nothing completed: zero throughput
    out: dict[str, Any] = {
        "num_requests": len(log.arrival_s),
        "num_completed": num_done,
        "num_rejected": int((log.status == STATUS_REJECTED).sum()),
        "duration_s": duration_s,
        "request_throughput_rps": num_done * per_s,
        "output_throughput_tok_s": float(log.output_tokens[done].sum()) * per_s,
        "input_throughput_tok_s": float(log.input_tokens[done].sum()) * per_s,
        **_latencies(records, done),
        **_utilization(resolved, records, duration_s),
        "num_preemptions": int(log.num_preemptions.sum()),
        "prefix_hit_frac": records.prefix_hit_tokens / records.prefix_tokens
        if records.prefix_tokens
        else float("nan"),
        **class_summary(log, class_slos(resolved.scenario), duration_s),
        **pool_summary(resolved, records, duration_s),
        **calibration_keys(resolved),
        "engine": records.engine,
    }
    cost = resolved.cost
    target = cost.target if isinstance(cost, SpeculativeCostModel) else cost
    out.update(tradeoff_summary(resolved.scenario.precision, target, out["mean_batch_size"]))
    return out


def calibration_keys(resolved: ResolvedScenario) -> dict[str, Any]:
    """Whether the prediction is calibrated (from a measured table) or spec-only, and from what."""
    return {
        "calibrated": resolved.cost.calibrated,
        "calibration_source": resolved.cost.calibration_source or "spec-only",
    }


def _latencies(records: RunRecords, done: np.ndarray) -> dict[str, float]:
    """TTFT, ITL, TPOT and E2E percentiles (and means) over the finished requests."""
    log = records.requests
    ttft = (log.first_token_s - log.arrival_s)[done]
    e2e = (log.finish_s - log.arrival_s)[done]
    multi = done & (log.output_tokens > 1)
    tpot = (log.finish_s - log.first_token_s)[multi] / (log.output_tokens[multi] - 1)
    gaps = np.frombuffer(records.itl.gap_s, dtype=np.float64)
    counts = np.frombuffer(records.itl.count, dtype=np.int64)
    return {
        "ttft_p50_s": nan_quantile(ttft, 0.50),
        "ttft_p90_s": nan_quantile(ttft, 0.90),
        "ttft_p99_s": nan_quantile(ttft, 0.99),
        "itl_p50_s": weighted_quantile(gaps, counts, 0.50),
        "itl_p99_s": weighted_quantile(gaps, counts, 0.99),
        "tpot_p50_s": nan_quantile(tpot, 0.50),
        "tpot_p99_s": nan_quantile(tpot, 0.99),
        "e2e_p50_s": nan_quantile(e2e, 0.50),
        "e2e_p99_s": nan_quantile(e2e, 0.99),
        "ttft_mean_s": float(np.mean(ttft)) if ttft.size else float("nan"),
        "e2e_mean_s": float(np.mean(e2e)) if e2e.size else float("nan"),
    }


def _utilization(resolved: ResolvedScenario, records: RunRecords, duration_s: float) -> dict[str, Any]:
    """Batch size, busy time, MFU/MBU against the cluster's peak, KV occupancy."""
    steps = records.steps
    num_gpus = resolved.num_gpus
    # math.fsum: exact, so the figures do not depend on the order the engine logged steps in.
    busy_s = math.fsum(steps.column("duration_s"))
    peak_flops_per_s, peak_bytes_per_s = cluster_peaks(resolved)  # every GPU of the cluster
    return {
        "mean_batch_size": float(np.mean(steps.column("num_seqs"))) if len(steps) else 0.0,
        "gpu_busy_frac": busy_s / (duration_s * records.num_replicas) if duration_s > 0 else 0.0,
        "mfu_frac": math.fsum(steps.column("flops")) / (peak_flops_per_s * duration_s)
        if duration_s > 0
        else 0.0,
        "mbu_frac": math.fsum(steps.column("num_bytes")) / (peak_bytes_per_s * duration_s)
        if duration_s > 0
        else 0.0,
        "kv_peak_frac": kv_peak_frac(records),
        "num_steps": len(steps),
        "num_gpus": num_gpus,
        "num_kv_blocks_per_replica": records.num_kv_blocks,
    }
