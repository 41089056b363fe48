"""Disaggregated prefill/decode pools resolved, and the price of moving a request's KV between them (L3).

Each pool (``Scenario.disaggregation.prefill`` / ``.decode``) gets its own hardware profile, layout,
memory plan and cost model. Replicas are numbered prefill first (0 .. P-1), then decode (P .. P+D-1).

KV transfer (Splitwise, DistServe): after a prefill replica samples a request's first token, the KV of
its ``n`` computed tokens moves to a decode replica. Every GPU of the prefill replica sends its shard
over its own link and every GPU of the decode replica receives its shard over its own, in parallel, so
the link is busy for

    busy_s = n x max(kv_bytes_per_token_per_gpu(prefill) / bw(prefill),
                     kv_bytes_per_token_per_gpu(decode) / bw(decode))

with ``bw`` = the link's per-GPU bandwidth x the profile's ``comm_efficiency_frac``, and the transfer lands
``latency_s`` after the last byte leaves (the link's per-hop latency from the profile, or
``disaggregation.transfer_latency_s``). The link is the scale-up fabric (NVLink-class) when both pools sit
in one node, else the scale-out network. Units: seconds, bytes, tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import DisaggregationConfig, LayoutConfig, PoolConfig, Scenario
from simulator.errors import ConfigError
from simulator.hardware import HardwareProfile, load_hardware
from simulator.hardware.calibration import calibration_for
from simulator.memory import MemoryPlan, plan_memory
from simulator.model import ModelSpec
from simulator.scheduling.policies import ADMISSION_WATERMARK_FRAC
from simulator.scheduling.state import ReplicaState
from simulator.step_cost import CostModel

POOL_NAMES = ("prefill", "decode")


@dataclass(frozen=True)
class ResolvedPool:
    """One pool: its replicas' hardware, layout, memory plan and cost model, and their indices."""

    name: str
    hardware: HardwareProfile
    layout: LayoutConfig
    memory: MemoryPlan
    cost: CostModel
    num_replicas: int
    first_replica: int  # replicas first_replica .. first_replica + num_replicas - 1 belong to the pool

    @property
    def replica_indices(self) -> range:
        """The cluster-wide indices of the pool's replicas."""
        return range(self.first_replica, self.first_replica + self.num_replicas)

    @property
    def num_gpus(self) -> int:
        """GPUs in the pool: replicas x tp x pp."""
        return self.num_replicas * self.layout.gpus_per_replica


@dataclass(frozen=True)
class KVTransfer:
    """How long moving ``n`` tokens of KV from a prefill replica to a decode replica takes."""

    link: str  # "scaleup" or "scaleout"
    busy_s_per_token: float  # the sending and receiving links are busy this long per token
    latency_s: float  # added once per transfer, after the last byte

    def busy_s(self, num_tokens: int) -> float:
        """Seconds the two replicas' links are busy moving ``num_tokens`` tokens of KV."""
        return num_tokens * self.busy_s_per_token


@dataclass(frozen=True)
class ResolvedPools:
    """The prefill pool, the decode pool and the KV transfer between them."""

    prefill: ResolvedPool
    decode: ResolvedPool
    transfer: KVTransfer

    @property
    def pools(self) -> tuple[ResolvedPool, ResolvedPool]:
        """Prefill, then decode."""
        return self.prefill, self.decode

    @property
    def num_replicas(self) -> int:
        """Replicas of both pools."""
        return self.prefill.num_replicas + self.decode.num_replicas

    @property
    def num_gpus(self) -> int:
        """GPUs of both pools."""
        return self.prefill.num_gpus + self.decode.num_gpus


def resolve_pools(scenario: Scenario, model: ModelSpec) -> ResolvedPools:
    """Each pool's hardware, memory plan and cost model (DoesNotFitError / ConfigError name the pool)."""
    config = scenario.disaggregation
    assert config is not None
    sched = scenario.scheduler
    if sched.policy == "static":
        raise ConfigError(
            "scheduler.policy",
            "static",
            "vllm, orca or sarathi with disaggregation (a static batch "
            "runs prompts and outputs together on one replica)",
        )
    if sched.speculative is not None:
        raise ConfigError(
            "scheduler.speculative", sched.speculative.draft, "null with disaggregation (not modelled yet)"
        )
    prefill = _resolve_pool("prefill", config.prefill, scenario, model, 0)
    decode = _resolve_pool("decode", config.decode, scenario, model, config.prefill.num_replicas)
    return ResolvedPools(prefill, decode, kv_transfer(config, prefill, decode))


def _resolve_pool(
    name: str, pool: PoolConfig, scenario: Scenario, model: ModelSpec, first_replica: int
) -> ResolvedPool:
    hardware_name = pool.hardware or scenario.hardware
    layout = pool.layout or scenario.layout.model_copy(update={"dp": 1})
    try:
        hardware = load_hardware(hardware_name)
    except ConfigError as exc:
        raise ConfigError(f"disaggregation.{name}.hardware", hardware_name, str(exc)) from None
    memory = plan_memory(model, hardware, scenario.precision, layout, scenario.scheduler)
    calibration = calibration_for(hardware_name, hardware.name)
    cost = CostModel.build(model, hardware, scenario.precision, layout, calibration, scenario.seed)
    return ResolvedPool(name, hardware, layout, memory, cost, pool.num_replicas, first_replica)


def kv_transfer(config: DisaggregationConfig, prefill: ResolvedPool, decode: ResolvedPool) -> KVTransfer:
    """The link the KV crosses and its price per token (see the module docstring)."""
    link = config.link
    one_node = prefill.num_gpus + decode.num_gpus <= prefill.hardware.gpus_per_node
    if link == "auto":
        link = "scaleup" if prefill.hardware.name == decode.hardware.name and one_node else "scaleout"
    elif link == "scaleup" and prefill.hardware.name != decode.hardware.name:
        raise ConfigError(
            "disaggregation.link", link, "auto or scaleout: pools on different hardware are not in one node"
        )

    def seconds_per_token(pool: ResolvedPool) -> float:
        hw = pool.hardware
        bandwidth = (
            hw.scaleup_bandwidth_bytes_per_s if link == "scaleup" else hw.scaleout_bandwidth_bytes_per_s
        )
        return pool.memory.kv_bytes_per_token_per_gpu / (bandwidth * hw.comm_efficiency_frac)

    latency_s = config.transfer_latency_s
    if latency_s is None:
        latency_s = max(
            hw.scaleup_latency_s if link == "scaleup" else hw.scaleout_latency_s
            for hw in (prefill.hardware, decode.hardware)
        )
    return KVTransfer(link, max(seconds_per_token(prefill), seconds_per_token(decode)), latency_s)


def pick_decode_replica(
    decoders: list[ReplicaState], num_tokens: int, num_incoming: list[int]
) -> ReplicaState | None:
    """Where a handoff of ``num_tokens`` tokens of KV goes, or None when it must wait.

    Candidates: decode replicas with no preempted sequence waiting (their own work comes first) and a
    free sequence slot (``max_num_seqs``, counting ``num_incoming[index]`` transfers on their way). Of
    those, the one with the most free blocks (then the fewest requests, then the lowest index), if it can
    hold the KV and still keep vLLM's admission watermark free (an idle replica keeps none).
    """
    candidates = [
        r for r in decoders if not r.waiting and r.num_running + num_incoming[r.index] < r.limits.max_num_seqs
    ]
    if not candidates:
        return None
    best = max(
        candidates,
        key=lambda r: (r.kv.num_free_blocks, -r.num_outstanding - num_incoming[r.index], -r.index),
    )
    kv = best.kv
    busy = best.num_outstanding or num_incoming[best.index]
    watermark = int(ADMISSION_WATERMARK_FRAC * kv.num_blocks) if busy else 0
    return best if kv.blocks_for(num_tokens) + watermark <= kv.num_free_blocks else None
