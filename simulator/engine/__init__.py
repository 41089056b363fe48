"""The event loop (layer L4, the only importer of simpy): arrivals, the router, replica processes."""

from __future__ import annotations

from simulator.engine.loop import run_engine
from simulator.engine.records import ItlLog, RequestLog, RunRecords, StepLog

__all__ = ["ItlLog", "RequestLog", "RunRecords", "StepLog", "run_engine"]
