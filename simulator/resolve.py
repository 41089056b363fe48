"""Resolve a Scenario into what the engine runs: specs, memory plan, cost model, policies (layer L3).

Everything that can be wrong with a scenario is found here, before any simulated time passes: unknown
names, an invalid layout, a model that does not fit, an unknown policy or router.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import Scenario
from simulator.disaggregation import ResolvedPools, resolve_pools
from simulator.errors import ConfigError, DoesNotFitError
from simulator.hardware import HardwareProfile, load_hardware
from simulator.hardware.calibration import CalibrationTable, calibration_for
from simulator.memory import MemoryPlan, kv_bytes_per_token_per_gpu, plan_memory, weights_bytes_per_gpu
from simulator.model import ModelSpec, load_model
from simulator.scheduling.policies import ReplicaPolicy, get_replica_policy
from simulator.scheduling.routers import Router, get_router
from simulator.speculative import (
    MTP_DRAFT,
    Pricer,
    SpeculativeCostModel,
    expected_tokens_per_step,
    mtp_draft_spec,
    mtp_weights_bytes_per_gpu,
    with_draft,
)
from simulator.step_cost import CostModel
from simulator.workload import RequestTable


@dataclass(frozen=True)
class ResolvedScenario:
    """A scenario with its names turned into specs and its capacity computed."""

    scenario: Scenario
    model: ModelSpec
    hardware: HardwareProfile
    memory: MemoryPlan
    cost: Pricer  # a CostModel, or a SpeculativeCostModel with a draft
    policy: ReplicaPolicy
    router: Router
    max_model_len: int
    # Disaggregated prefill/decode pools (None: colocated); with pools, memory, cost and hardware above
    # are the decode pool's
    pools: ResolvedPools | None = None

    @property
    def num_replicas(self) -> int:
        """Data-parallel replicas behind the router (with pools: both pools' replicas)."""
        return self.scenario.layout.dp if self.pools is None else self.pools.num_replicas

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica spans: tp x pp."""
        return self.scenario.layout.gpus_per_replica

    @property
    def num_gpus(self) -> int:
        """GPUs in the simulated cluster."""
        return self.num_replicas * self.gpus_per_replica if self.pools is None else self.pools.num_gpus


def resolve(scenario: Scenario) -> ResolvedScenario:
    """Load the model and hardware, check the layout and memory fit, build the cost model.

    The cost model uses the calibration table of the hardware when there is one (``calibration_for``:
    beside a profile given as a path, else ``hardware_profiles/calibration/<hardware name>.json``).
    """
    model = load_model(scenario.model)
    if scenario.disaggregation is not None:
        return _resolve_disaggregated(scenario, model)
    hardware = load_hardware(scenario.hardware)
    memory = plan_memory(model, hardware, scenario.precision, scenario.layout, scenario.scheduler)
    calibration = calibration_for(scenario.hardware, hardware.name)
    target = CostModel.build(model, hardware, scenario.precision, scenario.layout, calibration, scenario.seed)
    cost: Pricer = target
    if scenario.scheduler.speculative is not None:
        cost, memory = _with_draft(scenario, model, hardware, target, memory, calibration)
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
    its KV cache at its last token needs more blocks than a replica has (with attention-DP, than one
    GPU's pool has): it could never finish, even alone on the replica.
    """
    total = requests.input_tokens + requests.output_tokens
    too_long = total > resolved.max_model_len
    block_size = resolved.memory.block_size
    # The last sampled token is never computed, so a request's KV peaks at prompt + output - 1 tokens.
    blocks = -(-(total - 1) // block_size)
    memory = resolved.memory
    per_pool = memory.num_kv_blocks // memory.num_kv_pools  # attention-DP: a sequence lives on one GPU
    too_big = blocks > per_pool
    if resolved.pools is not None:  # the prompt must also fit a prefill replica
        prompt_blocks = -(-requests.input_tokens // block_size)
        too_big |= prompt_blocks > resolved.pools.prefill.memory.num_kv_blocks
    reasons = [""] * len(total)
    for i in np.flatnonzero(too_long | too_big):
        if too_long[i]:
            reasons[i] = (
                f"prompt {requests.input_tokens[i]} + output {requests.output_tokens[i]} tokens exceed "
                f"max_model_len = {resolved.max_model_len}"
            )
        elif blocks[i] > per_pool:
            where = "a replica has" if memory.num_kv_pools == 1 else "an attention-DP GPU has"
            reasons[i] = f"needs {blocks[i]} KV blocks at its last token, {where} {per_pool}"
        else:
            assert resolved.pools is not None
            reasons[i] = (
                f"its prompt needs {-(-requests.input_tokens[i] // block_size)} KV blocks, a prefill "
                f"replica has {resolved.pools.prefill.memory.num_kv_blocks}"
            )
    return reasons


def _resolve_disaggregated(scenario: Scenario, model: ModelSpec) -> ResolvedScenario:
    """Prefill and decode pools; the scenario-wide memory, cost and hardware are the decode pool's."""
    pools = resolve_pools(scenario, model)
    return ResolvedScenario(
        scenario=scenario,
        model=model,
        hardware=pools.decode.hardware,
        memory=pools.decode.memory,
        cost=pools.decode.cost,
        policy=get_replica_policy(scenario.scheduler.policy),
        router=get_router(scenario.scheduler.router),
        max_model_len=scenario.scheduler.max_model_len or model.max_position_embeddings,
        pools=pools,
    )


def _with_draft(
    scenario: Scenario,
    model: ModelSpec,
    hardware: HardwareProfile,
    target: CostModel,
    memory: MemoryPlan,
    calibration: CalibrationTable | None,
) -> tuple[SpeculativeCostModel, MemoryPlan]:
    """The speculative cost model and the memory plan with the draft's weights and KV beside the target's."""
    spec = scenario.scheduler.speculative
    assert spec is not None
    tp, pp = scenario.layout.tp, scenario.layout.pp
    precision = scenario.precision
    layout = scenario.layout
    kv_tp = 1 if layout.attention_dp else tp  # attention-DP: each GPU caches its own sequences whole
    if spec.draft == MTP_DRAFT:  # the target's MTP head: one layer at the last stage, its own KV
        draft = mtp_draft_spec(model)
        layout = layout.model_copy(update={"pp": 1})
        draft_weights_bytes = mtp_weights_bytes_per_gpu(draft, precision.weights, tp)
        draft_kv_bytes = kv_bytes_per_token_per_gpu(draft, precision.kv_cache, kv_tp, 1)
    else:
        try:
            draft = load_model(spec.draft)
        except ConfigError as exc:
            raise ConfigError(
                "scheduler.speculative.draft", spec.draft, f"a catalog model or 'mtp' ({exc})"
            ) from None
        draft_weights_bytes = weights_bytes_per_gpu(draft, precision.weights, tp, pp, layout.attention_dp)
        draft_kv_bytes = kv_bytes_per_token_per_gpu(draft, precision.kv_cache, kv_tp, pp)
    try:
        draft_cost = CostModel.build(draft, hardware, precision, layout, calibration, scenario.seed)
    except ConfigError as exc:
        raise ConfigError(
            "scheduler.speculative.draft", spec.draft, f"a draft that runs at the target's tp={tp} ({exc})"
        ) from None
    planned = with_draft(memory, draft_weights_bytes, draft_kv_bytes)
    if planned.num_kv_blocks < 1:
        one_block_bytes = planned.block_size * planned.kv_bytes_per_token_per_gpu
        raise DoesNotFitError(
            f"{scenario.model} with draft {draft.name} at tp={tp} on {hardware.name}",
            required_bytes=planned.weights_bytes_per_gpu
            + planned.activation_bytes_per_gpu
            + planned.runtime_reserve_bytes_per_gpu
            + one_block_bytes,
            available_bytes=memory.usable_bytes_per_gpu,
            suggestion="Try a smaller draft, more tensor parallelism or a larger GPU.",
        )
    pricer = SpeculativeCostModel(
        target, draft_cost, spec.num_speculative_tokens, expected_tokens_per_step(spec)
    )
    return pricer, planned
