"""Per-request-class figures for a mixed workload, as extra summary keys ``<class>.<key>``.

For each class: ``num_requests``, ``num_completed``, ``request_throughput_rps`` (over the whole run's
duration), TTFT / TPOT / E2E percentiles and ``slo_met_frac``, the fraction of the class's requests that
finished within every per-request target of its SLO (the class's own ``slo``, else the scenario's):
the rule of ``meets_slo`` (the pooled ITL is not split by class, so TPOT stands in for it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.config import Scenario, SLOConfig
from simulator.engine.records import STATUS_FINISHED, RequestLog
from simulator.metrics.quantiles import nan_quantile


def class_slos(scenario: Scenario) -> dict[str, SLOConfig]:
    """Each request class's SLO: its own when set, else the scenario's (empty without classes)."""
    return {c.name: c.slo or scenario.slo for c in scenario.workload.classes}


def meets_slo(
    finished: np.ndarray, ttft_s: np.ndarray, e2e_s: np.ndarray, tpot_s: np.ndarray, slo: SLOConfig
) -> np.ndarray:
    """Per request: finished, TTFT <= slo.ttft_p99_s, E2E <= slo.e2e_p99_s and TPOT <= slo.itl_p99_s.

    A request's own inter-token latency is judged by its TPOT (its mean gap), the per-request stand-in
    for the pooled ITL percentile; a NaN TPOT (a one-token output has no gap) passes that target.
    """
    ok = np.array(finished, dtype=bool)
    if slo.ttft_p99_s is not None:
        ok &= ttft_s <= slo.ttft_p99_s
    if slo.e2e_p99_s is not None:
        ok &= e2e_s <= slo.e2e_p99_s
    if slo.itl_p99_s is not None:
        ok &= np.isnan(tpot_s) | (tpot_s <= slo.itl_p99_s)
    return ok


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
        met = meets_slo(fin[mine], ttft[mine], e2e[mine], tpot[mine], slos[name])
        out |= {
            f"{name}.num_requests": int(mine.sum()),
            f"{name}.num_completed": int(fin.sum()),
            f"{name}.request_throughput_rps": float(fin.sum()) / duration_s if duration_s > 0 else 0.0,
            f"{name}.ttft_p50_s": nan_quantile(ttft[fin], 0.50),
            f"{name}.ttft_p99_s": nan_quantile(ttft[fin], 0.99),
            f"{name}.tpot_p50_s": nan_quantile(tpot[fin], 0.50),
            f"{name}.tpot_p99_s": nan_quantile(tpot[fin], 0.99),
            f"{name}.e2e_p50_s": nan_quantile(e2e[fin], 0.50),
            f"{name}.e2e_p99_s": nan_quantile(e2e[fin], 0.99),
            f"{name}.slo_met_frac": float(met.mean()) if met.size else float("nan"),
        }
    return out
