"""Summary keys and request-table columns of disaggregated prefill/decode pools.

- ``kv_transfer_s_mean`` / ``kv_transfer_s_p99``: from a decode replica reserving a request's KV blocks
  until its KV landed there (waiting for the link, moving the bytes, the link's latency).
- ``kv_wait_s_mean`` / ``kv_wait_s_p99``: from the first token until a decode replica had the blocks;
  ``num_kv_waits``: requests that waited at all.
- per pool (``prefill_pool.`` and ``decode_pool.``): ``num_replicas``, ``num_gpus``, ``gpu_busy_frac``
  (replica-seconds in steps over the pool's replicas x the run's duration), ``kv_peak_frac``,
  ``num_prefill_tokens`` and ``num_decode_tokens`` computed there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.engine.records import RunRecords
from simulator.metrics.quantiles import nan_quantile
from simulator.resolve import ResolvedScenario


def cluster_peaks(resolved: ResolvedScenario) -> tuple[float, float]:
    """Peak FLOP/s (in the compute dtype) and HBM bytes/s of all the cluster's GPUs together."""
    if resolved.pools is None:
        hw = resolved.hardware
        return (
            hw.peak_flops_per_s[resolved.cost.compute_dtype] * resolved.num_gpus,
            hw.hbm_bandwidth_bytes_per_s * resolved.num_gpus,
        )
    flops = sum(p.hardware.peak_flops_per_s[p.cost.compute_dtype] * p.num_gpus for p in resolved.pools.pools)
    hbm = sum(p.hardware.hbm_bandwidth_bytes_per_s * p.num_gpus for p in resolved.pools.pools)
    return flops, hbm


def kv_peak_frac(records: RunRecords) -> float:
    """The highest fraction of its KV blocks any replica held."""
    blocks = records.kv_blocks_by_replica or [records.num_kv_blocks] * len(records.kv_peak_used_blocks)
    return max(used / total for used, total in zip(records.kv_peak_used_blocks, blocks, strict=True))


def pool_summary(resolved: ResolvedScenario, records: RunRecords, duration_s: float) -> dict[str, Any]:
    """The disaggregation keys (see the module docstring); empty for a colocated cluster."""
    transfers = records.transfers
    if resolved.pools is None or transfers is None:
        return {}
    wait = transfers.kv_wait_s
    handed = wait[~np.isnan(wait)]
    out: dict[str, Any] = {
        "kv_transfer_s_mean": _mean(transfers.kv_transfer_s),
        "kv_transfer_s_p99": nan_quantile(transfers.kv_transfer_s, 0.99),
        "kv_wait_s_mean": _mean(wait),
        "kv_wait_s_p99": nan_quantile(wait, 0.99),
        "num_kv_waits": int(np.count_nonzero(handed > 0)),
        "kv_link": resolved.pools.transfer.link,
    }
    replica = records.steps.column("replica")
    durations = records.steps.column("duration_s")
    blocks = records.kv_blocks_by_replica or []
    for pool in resolved.pools.pools:
        indices = pool.replica_indices
        mine = (replica >= indices.start) & (replica < indices.stop)
        busy_s = math.fsum(durations[mine])
        prefix = f"{pool.name}_pool."
        out[prefix + "num_replicas"] = pool.num_replicas
        out[prefix + "num_gpus"] = pool.num_gpus
        out[prefix + "gpu_busy_frac"] = busy_s / (duration_s * pool.num_replicas) if duration_s > 0 else 0.0
        out[prefix + "kv_peak_frac"] = max(records.kv_peak_used_blocks[i] / blocks[i] for i in indices)
        out[prefix + "num_prefill_tokens"] = int(records.steps.column("num_prefill_tokens")[mine].sum())
        out[prefix + "num_decode_tokens"] = int(records.steps.column("num_decode_tokens")[mine].sum())
    return out


def _mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")
