"""Capacity planning (layer L5): the knee, B_sat, replicas for a peak rate, cost per million tokens.

``knee`` checks runs against the scenario's SLO and searches the highest rate that meets it;
``sizing`` turns a peak rate into replicas (Little's law and the knee); ``cost`` prices output tokens
in the four cost dimensions; ``plan`` does the three in one call (``plan_capacity``). See each
module's docstring for the formulas and units.
"""

from __future__ import annotations

from simulator.capacity.cost import (
    EXAMPLE_NODE_PRICE_USD,
    PRICES_AS_OF,
    CostBreakdown,
    CostInputs,
    cost_per_mtok,
    run_cost,
)
from simulator.capacity.knee import (
    KneeResult,
    NoKneeError,
    RateCheck,
    check_slo,
    find_knee,
    rate_scenario,
    request_slo_met,
    require_slo,
    saturation_batch,
)
from simulator.capacity.plan import CapacityPlan, plan_capacity
from simulator.capacity.sizing import Sizing, replicas_needed, sustainable_batch

__all__ = [
    "EXAMPLE_NODE_PRICE_USD",
    "PRICES_AS_OF",
    "CapacityPlan",
    "CostBreakdown",
    "CostInputs",
    "KneeResult",
    "NoKneeError",
    "RateCheck",
    "Sizing",
    "check_slo",
    "cost_per_mtok",
    "find_knee",
    "plan_capacity",
    "rate_scenario",
    "replicas_needed",
    "request_slo_met",
    "require_slo",
    "run_cost",
    "saturation_batch",
    "sustainable_batch",
]
