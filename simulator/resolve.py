"""Resolve a Scenario into what the engine runs: specs, memory plan, cost model, policies (layer L3).

Everything that can be wrong with a scenario is found here, before any simulated time passes: unknown
names, an invalid layout, a model that does not fit, an unknown policy or router.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import Scenario
from simulator.hardware import HardwareProfile, load_hardware
from simulator.hardware.calibration import find_calibration
from simulator.memory import MemoryPlan, plan_memory
from simulator.model import ModelSpec, load_model
from simulator.scheduling.policies import ReplicaPolicy, get_replica_policy
from simulator.scheduling.routers import Router, get_router
from simulator.step_cost import CostModel
from simulator.workload import RequestTable


@dataclass(frozen=True)
class ResolvedScenario:
    """A scenario with its names turned into specs and its capacity computed."""

    scenario: Scenario
    model: ModelSpec
    hardware: HardwareProfile
    memory: MemoryPlan
    cost: CostModel
    policy: ReplicaPolicy
    router: Router
    max_model_len: int

    @property
    def num_replicas(self) -> int:
        """Data-parallel replicas behind the router."""
        return self.scenario.layout.dp

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica spans: tp x pp."""
        return self.scenario.layout.gpus_per_replica

    @property
    def num_gpus(self) -> int:
        """GPUs in the simulated cluster."""
        return self.num_replicas * self.gpus_per_replica


def resolve(scenario: Scenario) -> ResolvedScenario:
    """Load the model and hardware, check the layout and memory fit, build the cost model.

    The cost model uses ``hardware_profiles/calibration/<hardware name>.json`` when that table exists.
    """
    model = load_model(scenario.model)
    hardware = load_hardware(scenario.hardware)
    memory = plan_memory(model, hardware, scenario.precision, scenario.layout, scenario.scheduler)
    calibration = find_calibration(hardware.name)
    cost = CostModel.build(model, hardware, scenario.precision, scenario.layout, calibration, scenario.seed)
    max_model_len = scenario.scheduler.max_model_len or model.max_position_embeddings
    return ResolvedScenario(
        scenario=scenario,
        model=model,
        hardware=hardware,
        memory=memory,
        cost=cost,
        policy=get_replica_policy(scenario.scheduler.policy),
        router=get_router(scenario.scheduler.router),
        max_model_len=max_model_len,
    )


def rejection_reasons(resolved: ResolvedScenario, requests: RequestTable) -> list[str]:
    """Per request, why it can never be served ("" when it can), vectorized over the table.

    A request is rejected when its prompt plus output exceeds ``max_model_len`` (as vLLM does), or when
    its KV cache at its last token needs more blocks than a replica has: it could never finish, even
    alone on the replica.
    """
    total = requests.input_tokens + requests.output_tokens
    too_long = total > resolved.max_model_len
    block_size = resolved.memory.block_size
    # The last sampled token is never computed, so a request's KV peaks at prompt + output - 1 tokens.
    blocks = -(-(total - 1) // block_size)
    too_big = blocks > resolved.memory.num_kv_blocks
    reasons = [""] * len(total)
    for i in np.flatnonzero(too_long | too_big):
        if too_long[i]:
            reasons[i] = (
                f"prompt {requests.input_tokens[i]} + output {requests.output_tokens[i]} tokens exceed "
                f"max_model_len = {resolved.max_model_len}"
            )
        else:
            reasons[i] = (
                f"needs {blocks[i]} KV blocks at its last token, a replica has "
                f"{resolved.memory.num_kv_blocks}"
            )
    return reasons
