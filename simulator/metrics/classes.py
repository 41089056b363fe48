"""Per-request-class figures for a mixed workload, as extra summary keys ``<class>.<key>``.

For each class: ``num_requests``, ``num_completed``, ``request_throughput_rps`` (over the whole run's
duration), TTFT / TPOT / E2E percentiles and ``slo_met_frac``, the fraction of the class's requests that
finished within every per-request target of its SLO (the class's own ``slo``, else the scenario's):
TTFT <= ``ttft_p99_s``, E2E <= ``e2e_p99_s``, TPOT <= ``itl_p99_s`` (a request's mean gap stands in
for its inter-token latency; the pooled ITL is not split by class).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.config import SLOConfig
from simulator.engine.records import STATUS_FINISHED, RequestLog


def _pct(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.quantile(values, q)) if values.size else float("nan")


def slo_met(log: RequestLog, slo: SLOConfig) -> np.ndarray:
    """Per request, whether it finished within every per-request target of ``slo``."""
    ok = log.status == STATUS_FINISHED
    with np.errstate(invalid="ignore", divide="ignore"):
        if slo.ttft_p99_s is not None:
            ok &= (log.first_token_s - log.arrival_s) <= slo.ttft_p99_s
        if slo.e2e_p99_s is not None:
            ok &= (log.finish_s - log.arrival_s) <= slo.e2e_p99_s
        if slo.itl_p99_s is not None:
            tpot = (log.finish_s - log.first_token_s) / np.maximum(log.output_tokens - 1, 1)
            ok &= (log.output_tokens <= 1) | (tpot <= slo.itl_p99_s)
    return np.asarray(ok, dtype=bool)


def class_summary(log: RequestLog, slos: dict[str, SLOConfig], duration_s: float) -> dict[str, Any]:
    """``<class>.<key>`` figures for every class of ``log`` (empty without classes)."""
    if log.class_id is None:
        return {}
    out: dict[str, Any] = {}
    done = log.status == STATUS_FINISHED
    ttft = log.first_token_s - log.arrival_s
    e2e = log.finish_s - log.arrival_s
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(
            log.output_tokens > 1, (log.finish_s - log.first_token_s) / (log.output_tokens - 1), np.nan
        )
    for k, name in enumerate(log.class_names):
        mine = log.class_id == k
        fin = mine & done
        met = slo_met(log, slos[name])[mine]
        out |= {
            f"{name}.num_requests": int(mine.sum()),
            f"{name}.num_completed": int(fin.sum()),
            f"{name}.request_throughput_rps": float(fin.sum()) / duration_s if duration_s > 0 else 0.0,
            f"{name}.ttft_p50_s": _pct(ttft[fin], 0.50),
            f"{name}.ttft_p99_s": _pct(ttft[fin], 0.99),
            f"{name}.tpot_p50_s": _pct(tpot[fin], 0.50),
            f"{name}.tpot_p99_s": _pct(tpot[fin], 0.99),
            f"{name}.e2e_p50_s": _pct(e2e[fin], 0.50),
            f"{name}.e2e_p99_s": _pct(e2e[fin], 0.99),
            f"{name}.slo_met_frac": float(met.mean()) if met.size else float("nan"),
        }
    return out
