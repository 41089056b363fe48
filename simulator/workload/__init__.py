"""Workloads: which requests arrive when, with how many prompt and output tokens (layer L3, no simpy).

``build_workload(scenario.workload, scenario.seed)`` gives the engine a ``RequestTable``; the pieces
(arrival generators, length samplers, trace loaders) are usable on their own.
"""

from __future__ import annotations

from simulator.workload.arrivals import (
    ARRIVAL_GENERATORS,
    apply_rate_profile,
    gamma_arrivals,
    poisson_arrivals,
    rescale_to_rate,
)
from simulator.workload.lengths import sample_lengths
from simulator.workload.requests import RequestTable, build_workload
from simulator.workload.traces import list_traces, load_length_values, load_trace

__all__ = [
    "ARRIVAL_GENERATORS",
    "RequestTable",
    "apply_rate_profile",
    "build_workload",
    "gamma_arrivals",
    "list_traces",
    "load_length_values",
    "load_trace",
    "poisson_arrivals",
    "rescale_to_rate",
    "sample_lengths",
]
