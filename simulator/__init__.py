"""Trilemma: a discrete-event simulator of LLM inference clusters.

The package is layered; a module imports only from its own layer or below (see README, "Architecture"):

- L0 ``units``, ``errors``, ``precision``, ``rng``, ``resources``: vocabulary, no simulator logic.
- L1 ``hardware``, ``model``, ``config``: data (profiles, specs, scenarios) and their loaders.
- L2 ``parallel``, ``ops``, ``memory``, ``step_cost``: the roofline cost model, pure functions.
- L3 ``workload``, ``kv_cache``, ``scheduling``, ``resolve``: requests, paged KV cache, batching policies.
- L4 ``engine`` (the only importer of simpy): the event loop over routers and replicas.
- L5 ``metrics``, ``simulate``, ``capacity``, ``studies``: summaries, the public API, what-if studies.
- L6 ``sweeps``, ``cli``: grids of scenarios, the ``trilemma`` command.
"""

from __future__ import annotations

__version__ = "0.1.0"

from simulator.capacity import CapacityPlan, CostInputs, KneeResult, find_knee, plan_capacity
from simulator.config import Scenario
from simulator.errors import ConfigError, DataFileError, DoesNotFitError, SimulatorError, UnknownNameError
from simulator.hardware import HardwareProfile, list_hardware, load_hardware
from simulator.metrics import SUMMARY_KEYS
from simulator.model import ModelSpec, list_models, load_model, model_from_hf_config
from simulator.resolve import ResolvedScenario, resolve
from simulator.simulate import SimulationResult, simulate
from simulator.studies import compare, curve
from simulator.sweeps import sweep
from simulator.validate import Comparison, median_abs_error_frac, validate
from simulator.validation import ScenarioError
from simulator.workload import RequestTable, build_workload, list_traces, load_trace

knee = find_knee  # simulator.knee(scenario, rel_tol=0.05): the name for the knee search

__all__ = [
    "SUMMARY_KEYS",
    "CapacityPlan",
    "Comparison",
    "ConfigError",
    "CostInputs",
    "DataFileError",
    "DoesNotFitError",
    "HardwareProfile",
    "KneeResult",
    "ModelSpec",
    "RequestTable",
    "ResolvedScenario",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "SimulatorError",
    "UnknownNameError",
    "__version__",
    "build_workload",
    "compare",
    "curve",
    "find_knee",
    "knee",
    "list_hardware",
    "list_models",
    "list_traces",
    "load_hardware",
    "load_model",
    "load_trace",
    "median_abs_error_frac",
    "model_from_hf_config",
    "plan_capacity",
    "resolve",
    "simulate",
    "sweep",
    "validate",
]
