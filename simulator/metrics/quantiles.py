"""Percentiles the summaries use: of values ignoring NaN, and of values repeated by weights (L5)."""

from __future__ import annotations

import numpy as np


def nan_quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile of the values that are not NaN (NaN when there is none)."""
    values = values[~np.isnan(values)]
    return float(np.quantile(values, q)) if values.size else float("nan")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of values repeated ``weights`` times (inverted CDF, as numpy's 'inverted_cdf')."""
    if values.size == 0 or weights.sum() <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    rank = q * cum[-1]
    index = int(np.searchsorted(cum, rank, side="left"))
    return float(values[order][min(index, len(order) - 1)])
