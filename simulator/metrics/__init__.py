"""From run records to answers (layer L5): request and step tables, the summary, figures."""

from __future__ import annotations

from simulator.metrics.quantiles import weighted_quantile
from simulator.metrics.summary import SUMMARY_KEYS, summarize
from simulator.metrics.tables import requests_frame, steps_frame

__all__ = ["SUMMARY_KEYS", "requests_frame", "steps_frame", "summarize", "weighted_quantile"]
