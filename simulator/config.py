"""Scenario: the frozen root of everything a simulation needs, loaded from YAML or built in Python.

A scenario names its model and hardware (catalog names or file paths); ``resolve`` in
``simulator.catalog`` turns the names into specs. Units are in the field names (``_s``, ``_per_s``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.config_workload import (
    DEFAULT_NUM_REQUESTS,
    DEFAULT_RATE_PER_S,
    MAX_NUM_REQUESTS,
    MAX_TOKENS_PER_REQUEST,
    ArrivalKind,
    EmpiricalLengths,
    LengthDist,
    LengthSpec,
    LognormalLengths,
    PrefixConfig,
    RateProfile,
    RequestClassConfig,
    SessionConfig,
    SLOConfig,
    UniformLengths,
    WorkloadConfig,
)
from simulator.datafiles import SAFE_DUMPER, read_yaml_mapping
from simulator.errors import ConfigError
from simulator.precision import DType, KVDType
from simulator.resources import default_scenario_path
from simulator.validation import ScenarioError

__all__ = [
    "DEFAULT_NUM_REQUESTS",
    "DEFAULT_RATE_PER_S",
    "MAX_NUM_REQUESTS",
    "MAX_TOKENS_PER_REQUEST",
    "ArrivalKind",
    "DisaggregationConfig",
    "EmpiricalLengths",
    "LayoutConfig",
    "LengthDist",
    "LengthSpec",
    "LognormalLengths",
    "PoolConfig",
    "PrecisionConfig",
    "PrefixConfig",
    "QualityEntry",
    "RateProfile",
    "RequestClassConfig",
    "SLOConfig",
    "Scenario",
    "SchedulerConfig",
    "SessionConfig",
    "SpeculativeConfig",
    "UniformLengths",
    "WorkloadConfig",
    "set_dotted",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class QualityEntry(BaseModel):
    """One user-supplied quality measurement for the scenario's precision (never invented by trilemma)."""

    model_config = _FROZEN
    task: str = Field(min_length=1, description="benchmark or task name, e.g. mmlu")
    metric: str = Field("accuracy", min_length=1, description="what the value measures")
    value: float = Field(description="the measured value (e.g. accuracy delta vs bf16, in points)")
    source: str = Field(min_length=1, description="where the measurement comes from")


class PrecisionConfig(BaseModel):
    """Storage formats: weights, and the KV cache. Compute follows the weights where the GPU has it.

    ``quality``: the user's own measured quality for this precision (a fidelity table), reported beside
    latency and cost; trilemma ships none.
    """

    model_config = _FROZEN
    weights: DType = "bf16"
    kv_cache: KVDType = "bf16"
    quality: tuple[QualityEntry, ...] = ()

    @field_validator("weights")
    @classmethod
    def _no_fp32_weights(cls, v: str) -> str:
        if v == "fp32":
            raise ValueError("fp32 weights are not a serving format; use bf16, fp8, int8, int4 or fp4")
        return v


class LayoutConfig(BaseModel):
    """How a replica is spread over GPUs (tp x pp, experts over ep) and how many replicas serve (dp)."""

    model_config = _FROZEN
    tp: int = Field(1, ge=1, le=512, description="tensor-parallel degree within one pipeline stage")
    pp: int = Field(1, ge=1, le=256, description="pipeline stages of one replica (tp GPUs each)")
    ep: int = Field(
        1,
        ge=1,
        le=512,
        description="MoE: expert-parallel degree, 1 (experts TP-sharded) or tp (whole "
        "experts spread over the stage's GPUs, all-to-all dispatch and combine)",
    )
    dp: int = Field(1, ge=1, le=4096, description="data-parallel replicas behind the router")
    expert_skew: float = Field(
        0.0, ge=0, le=4, description="MoE routing skew: Zipf exponent of expert popularity (0: uniform)"
    )
    attention_dp: bool = Field(
        False,
        description="MoE, DeepSeek-style serving: attention (and the dense layers) data-parallel over "
        "the stage's tp GPUs, each with its own sequences and KV cache; routed experts spread over "
        "them (ep = tp)",
    )

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica spans: tp x pp."""
        return self.tp * self.pp


class PoolConfig(BaseModel):
    """Disaggregation: one pool of identical replicas (how many, on what hardware, in what layout)."""

    model_config = _FROZEN
    num_replicas: int = Field(1, ge=1, le=4096, description="replicas in the pool")
    hardware: str | None = Field(None, description="profile name or YAML path (default: the scenario's)")
    layout: LayoutConfig | None = Field(None, description="each replica's layout (default: the scenario's)")

    @field_validator("layout")
    @classmethod
    def _no_dp(cls, layout: LayoutConfig | None) -> LayoutConfig | None:
        if layout is not None and layout.dp != 1:
            raise ValueError(f"layout.dp = {layout.dp}: a pool's size is its num_replicas (leave dp at 1)")
        return layout


class DisaggregationConfig(BaseModel):
    """Separate prefill and decode pools (Splitwise, DistServe) and the link the KV cache crosses."""

    model_config = _FROZEN
    prefill: PoolConfig = PoolConfig()
    decode: PoolConfig = PoolConfig()
    link: Literal["auto", "scaleup", "scaleout"] = Field(
        "auto",
        description="scaleup (NVLink-class: both pools in one node), scaleout (the network), or auto "
        "(scaleup when both pools share a hardware type and fit in one node)",
    )
    transfer_latency_s: float | None = Field(
        None, ge=0, le=1, description="fixed latency per KV transfer (default: the link's profile latency)"
    )


class SpeculativeConfig(BaseModel):
    """Speculative decoding: a draft model proposes tokens that the target verifies in one step."""

    model_config = _FROZEN
    draft: str = Field(
        description="catalog model name or HF config.json path of the draft model, or mtp (the target's head)"
    )
    num_speculative_tokens: int = Field(4, ge=1, le=16, description="k: draft tokens proposed per step")
    acceptance_rate: float = Field(
        0.7, gt=0, lt=1, description="alpha: chance each draft token is accepted (given the ones before)"
    )
    acceptance_profile: tuple[float, ...] | None = Field(
        None, description="per-position acceptance chances (k values in (0, 1]); replaces acceptance_rate"
    )

    @model_validator(mode="after")
    def _profile_matches_k(self) -> SpeculativeConfig:
        profile = self.acceptance_profile
        if profile is not None:
            if len(profile) != self.num_speculative_tokens:
                raise ValueError(
                    f"acceptance_profile has {len(profile)} values; give one per speculative token "
                    f"(num_speculative_tokens = {self.num_speculative_tokens})"
                )
            if not all(0 < p <= 1 for p in profile):
                raise ValueError(f"acceptance_profile values must lie in (0, 1]; got {list(profile)}")
        return self


class SchedulerConfig(BaseModel):
    """Per-replica batching (vLLM-style continuous batching) and the cluster router."""

    model_config = _FROZEN
    policy: str = Field("vllm", description="replica batching policy: vllm, orca, sarathi, static")
    router: str = Field(
        "round_robin",
        description="round_robin, least_outstanding, random, least_kv, power_of_two, prefix_affinity",
    )
    max_num_seqs: int = Field(256, ge=1, le=65536, description="sequences in one step at most")
    max_num_batched_tokens: int = Field(8192, ge=1, le=1_048_576, description="tokens in one step at most")
    block_size: int = Field(16, ge=1, le=4096, description="tokens per paged KV-cache block")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="fraction of HBM the engine may use")
    step_overhead_s: float = Field(
        0.0008, ge=0, le=1, description="CPU time per step (scheduling, sampling, launch), not overlapped"
    )
    max_model_len: int | None = Field(
        None, ge=1, description="longest prompt+output accepted (default: the model's context length)"
    )
    chunk_size: int | None = Field(
        None, ge=1, le=1_048_576, description="sarathi: tokens per step (default max_num_batched_tokens)"
    )
    batch_wait_s: float = Field(
        0.0, ge=0, le=3600, description="static: longest a request waits for its batch to fill"
    )
    priority_preemption: bool = Field(
        True, description="with request classes: preempt less urgent running work to admit urgent work"
    )
    preemption_mode: Literal["recompute", "swap"] = Field(
        "recompute",
        description="recompute: drop a preempted request's KV and compute it again; swap: copy it to host "
        "memory over the profile's host link and back",
    )
    speculative: SpeculativeConfig | None = Field(None, description="speculative decoding (off when null)")
    prefix_caching: bool = Field(
        True, description="keep the KV blocks of shared prefixes for later requests (LRU eviction)"
    )
    fast_mode: bool = Field(
        True,
        description="price runs of identical decode steps at once (same results as false, which runs "
        "one event per step)",
    )


class Scenario(BaseModel):
    """Everything one simulation needs. Frozen: derive variants with ``with_updates``."""

    model_config = _FROZEN
    name: str = "scenario"
    model: str = Field("llama-3.1-70b", description="catalog model name or path to a HF config.json")
    hardware: str = Field("h100-sxm", description="hardware profile name or path to a profile YAML")
    precision: PrecisionConfig = PrecisionConfig()
    layout: LayoutConfig = LayoutConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    workload: WorkloadConfig = WorkloadConfig.model_validate({})
    slo: SLOConfig = SLOConfig()
    disaggregation: DisaggregationConfig | None = Field(
        None, description="separate prefill and decode pools (off when null: every replica does both)"
    )
    seed: int = Field(0, ge=0, le=2**63 - 1)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
        """Load a scenario file; relative paths inside it resolve against the file's folder."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError("scenario", str(path), "no such file; give the path of a scenario YAML")
        data = read_yaml_mapping(path, "a scenario")
        data = _resolve_paths(data, path.resolve().parent)
        return cls.from_dict(data, overrides)

    @classmethod
    def default(cls, overrides: Mapping[str, Any] | None = None) -> Scenario:
        """The embedded default: Llama-3.1-70B FP8 on 4x2 H100s, the Azure conversation trace at 16 rps."""
        return cls.from_yaml(default_scenario_path(), overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Scenario:
        """Validate a plain mapping (plus dotted-key overrides) into a Scenario."""
        merged = copy.deepcopy(dict(data))
        for key, value in (overrides or {}).items():
            set_dotted(merged, key, value)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ScenarioError(exc, cls) from None

    def with_updates(self, updates: Mapping[str, Any]) -> Scenario:
        """A copy with dotted keys replaced, validated again: ``s.with_updates({"layout.tp": 4})``."""
        return Scenario.from_dict(self.model_dump(mode="python"), updates)

    def to_yaml(self) -> str:
        """The resolved scenario as YAML (written next to every result)."""
        return yaml.dump(self.model_dump(mode="json"), Dumper=SAFE_DUMPER, sort_keys=False)


def set_dotted(data: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``"a.b"``, creating intermediate mappings."""
    parts = dotted_key.split(".")
    if not all(parts):
        raise ConfigError("--set", dotted_key, "keys are dotted names such as layout.tp")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError("--set", dotted_key, f"{part!r} holds a value, not a group of keys")
        node = child
    node[parts[-1]] = value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make file references in a scenario absolute, relative to the scenario file's folder."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and _looks_like_path(value):
            p = Path(value).expanduser()
            return str(p if p.is_absolute() else (base / p).resolve())
        return value

    out = copy.deepcopy(data)
    for key in ("model", "hardware"):
        out[key] = fix(out.get(key)) if key in out else None
        if out[key] is None:
            del out[key]
    pools = out.get("disaggregation")
    for pool in pools.values() if isinstance(pools, dict) else ():
        if isinstance(pool, dict) and isinstance(pool.get("hardware"), str):
            pool["hardware"] = fix(pool["hardware"])
    workload = out.get("workload")
    if isinstance(workload, dict):
        if "trace" in workload:
            workload["trace"] = fix(workload["trace"])
        for key in ("input_tokens", "output_tokens"):
            spec = workload.get(key)
            if isinstance(spec, dict) and "file" in spec:
                spec["file"] = fix(spec["file"])
    return out


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".yaml", ".yml", ".json", ".csv", ".gz"))
