"""Parallel layouts (tensor parallelism within a replica) and the communication they cost."""

from __future__ import annotations

from simulator.parallel.comm import allgather_time_s, allreduce_time_s, p2p_time_s
from simulator.parallel.layout import kv_heads_per_gpu, valid_tp_values, validate_layout

__all__ = [
    "allgather_time_s",
    "allreduce_time_s",
    "kv_heads_per_gpu",
    "p2p_time_s",
    "valid_tp_values",
    "validate_layout",
]
