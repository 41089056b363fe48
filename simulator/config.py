"""Scenario: the frozen root of everything a simulation needs, loaded from YAML or built in Python.

A scenario names its model and hardware (catalog names or file paths); ``resolve`` in
``simulator.catalog`` turns the names into specs. Units are in the field names (``_s``, ``_per_s``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.datafiles import read_yaml_mapping
from simulator.errors import ConfigError
from simulator.precision import DType, KVDType
from simulator.resources import default_scenario_path
from simulator.validation import ScenarioError

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Upper bounds on what a scenario can make the simulator allocate (see DESIGN.md, untrusted files).
MAX_NUM_REQUESTS = 20_000_000
MAX_TOKENS_PER_REQUEST = 2_000_000
DEFAULT_RATE_PER_S = 4.0
DEFAULT_NUM_REQUESTS = 1000


class UniformLengths(BaseModel):
    """Integer lengths drawn uniformly from [low, high]."""

    model_config = _FROZEN
    dist: Literal["uniform"]
    low: int = Field(ge=1, le=MAX_TOKENS_PER_REQUEST)
    high: int = Field(ge=1, le=MAX_TOKENS_PER_REQUEST)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLengths:
        if self.high < self.low:
            raise ValueError(f"high={self.high} must be >= low={self.low}")
        return self


class LognormalLengths(BaseModel):
    """Lengths with a log-normal distribution of the given mean (tokens) and sigma (of the log)."""

    model_config = _FROZEN
    dist: Literal["lognormal"]
    mean: float = Field(gt=0, le=MAX_TOKENS_PER_REQUEST)
    sigma: float = Field(ge=0, le=5)
    low: int = Field(1, ge=1, description="lengths are clipped to [low, high]")
    high: int = Field(MAX_TOKENS_PER_REQUEST, ge=1, le=MAX_TOKENS_PER_REQUEST)

    @model_validator(mode="after")
    def _ordered(self) -> LognormalLengths:
        if self.high < self.low:
            raise ValueError(f"high={self.high} must be >= low={self.low}")
        return self


class EmpiricalLengths(BaseModel):
    """Lengths resampled from given values, or from a one-column CSV/text file of them."""

    model_config = _FROZEN
    dist: Literal["empirical"]
    values: tuple[int, ...] | None = None
    file: str | None = None
    column: str | None = Field(None, description="column of a CSV file (default: the first)")

    @model_validator(mode="after")
    def _one_source(self) -> EmpiricalLengths:
        if (self.values is None) == (self.file is None):
            raise ValueError("give exactly one of values or file")
        if self.values is not None and (
            not self.values or min(self.values) < 1 or max(self.values) > MAX_TOKENS_PER_REQUEST
        ):
            raise ValueError(f"values must be a non-empty list of integers in [1, {MAX_TOKENS_PER_REQUEST}]")
        return self


LengthDist = Annotated[UniformLengths | LognormalLengths | EmpiricalLengths, Field(discriminator="dist")]
LengthSpec = Annotated[int, Field(ge=1, le=MAX_TOKENS_PER_REQUEST)] | LengthDist


class SLOConfig(BaseModel):
    """Latency targets; a request meets the SLO when it meets every target that is set."""

    model_config = _FROZEN
    ttft_p99_s: float | None = Field(None, gt=0)
    itl_p99_s: float | None = Field(None, gt=0)
    e2e_p99_s: float | None = Field(None, gt=0)
    goodput_frac: float | None = Field(
        None, gt=0, le=1, description="fraction of requests that must meet every per-request target"
    )


class PrefixConfig(BaseModel):
    """Shared prompt prefixes (system prompts): each request starts with one of ``num_prefixes``."""

    model_config = _FROZEN
    num_prefixes: int = Field(1, ge=1, le=1_000_000, description="distinct prefixes")
    tokens: int = Field(ge=1, le=MAX_TOKENS_PER_REQUEST, description="tokens of each prefix")
    popularity: Literal["uniform", "zipf"] = Field("uniform", description="how requests pick a prefix")
    zipf_exponent: float = Field(1.0, gt=0, le=10, description="zipf: P(rank r) ~ 1 / r^exponent")


ArrivalKind = Literal["poisson", "gamma", "burst", "concurrency", "trace"]


class RateProfile(BaseModel):
    """A periodic, piecewise-constant rate: ``rate_per_s x factors[i]`` during slot i (a day in hours)."""

    model_config = _FROZEN
    slot_s: float = Field(gt=0, le=1e7, description="simulated seconds per slot (one 'hour' of a day)")
    factors: tuple[Annotated[float, Field(ge=0, le=1e6)], ...] = Field(
        min_length=1, max_length=100_000, description="rate multiplier per slot; the profile repeats"
    )

    @model_validator(mode="after")
    def _some_traffic(self) -> RateProfile:
        if max(self.factors) <= 0:
            raise ValueError("factors must have at least one slot > 0")
        return self


class WorkloadConfig(BaseModel):
    """Which requests arrive when, with how many prompt and output tokens."""

    model_config = _FROZEN
    arrival: ArrivalKind = "poisson"
    rate_per_s: float | None = Field(
        None,
        gt=0,
        description="mean arrival rate (poisson/gamma default 4.0); for a trace, rescales its timestamps "
        "to this mean rate (default: replay the trace's own timing)",
    )
    cv: float = Field(2.0, gt=0, le=100, description="gamma arrivals: coefficient of variation of gaps")
    concurrency: int | None = Field(None, ge=1, le=1_000_000, description="closed loop: clients in flight")
    num_requests: int | None = Field(
        None,
        ge=1,
        le=MAX_NUM_REQUESTS,
        description="requests to send (default 1000; a trace: the first N rows, replayed again after its "
        "end when N exceeds its length; default: all rows)",
    )
    input_tokens: LengthSpec = 512
    output_tokens: LengthSpec = 128
    trace: str | None = Field(None, description="bundled trace name (azure-conv-2023) or a CSV path")
    rate_profile: RateProfile | None = Field(
        None, description="poisson/gamma: vary the rate over time (rate_per_s x factor of the slot)"
    )
    prefix: PrefixConfig | None = Field(
        None, description="shared prefixes: each prompt is a prefix plus input_tokens of its own"
    )
    classes: tuple[RequestClassConfig, ...] = Field(
        (),
        description="request classes, each with its own arrivals, lengths, priority and SLO (replaces "
        "the arrival and length keys above)",
    )

    @model_validator(mode="before")
    @classmethod
    def _arrival_defaults(cls, data: Any) -> Any:
        """Defaults that depend on the arrival kind: a synthetic workload gets a rate and a count."""
        if not isinstance(data, dict):
            return data
        if data.get("classes"):
            others = sorted(set(data) - {"classes"})
            if others:
                raise ValueError(
                    f"workload.classes replaces the workload's own {', '.join(others)}: give them in "
                    "each class instead"
                )
        arrival = data.get("arrival", "poisson")
        out = dict(data)
        if arrival in ("poisson", "gamma") and out.get("rate_per_s") is None:
            out["rate_per_s"] = DEFAULT_RATE_PER_S
        if arrival != "trace" and out.get("num_requests") is None:
            out["num_requests"] = DEFAULT_NUM_REQUESTS
        return out

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadConfig:
        if self.arrival == "trace" and self.trace is None:
            raise ValueError("arrival 'trace' needs workload.trace (a bundled name or a CSV path)")
        if self.trace is not None and self.arrival != "trace":
            raise ValueError(
                f"workload.trace is set, so workload.arrival must be 'trace' (got {self.arrival!r})"
            )
        if self.arrival == "concurrency" and self.concurrency is None:
            raise ValueError("arrival 'concurrency' needs workload.concurrency (number of clients)")
        if self.arrival in ("poisson", "gamma") and self.rate_per_s is None:
            raise ValueError(f"arrival {self.arrival!r} needs workload.rate_per_s")
        if self.rate_profile is not None and self.arrival not in ("poisson", "gamma"):
            raise ValueError(f"workload.rate_profile needs arrival poisson or gamma (got {self.arrival!r})")
        if self.arrival != "trace" and self.num_requests is None:
            raise ValueError(f"arrival {self.arrival!r} needs workload.num_requests")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"workload.classes names must be unique; got {names}")
        if any(c.arrival == "concurrency" for c in self.classes):
            raise ValueError("workload.classes need open-loop arrivals (poisson, gamma, burst, trace)")
        return self


class RequestClassConfig(WorkloadConfig):
    """One class of requests in a mixed workload: its own arrivals and lengths, a priority and an SLO.

    Lower ``priority`` is served first: a priority scheduler admits the most urgent waiting request
    first and preempts less urgent running work when KV blocks run out.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", description="class name in reports")
    priority: int = Field(0, ge=0, le=1000, description="lower is served first (0 = most urgent)")
    slo: SLOConfig | None = Field(None, description="this class's latency targets (default: the scenario's)")

    @model_validator(mode="after")
    def _no_nested_classes(self) -> RequestClassConfig:
        if self.classes:
            raise ValueError(f"request class {self.name!r} cannot have classes of its own")
        return self


WorkloadConfig.model_rebuild()  # resolve the forward reference to RequestClassConfig


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

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica spans: tp x pp."""
        return self.tp * self.pp


class SpeculativeConfig(BaseModel):
    """Speculative decoding: a draft model proposes tokens that the target verifies in one step."""

    model_config = _FROZEN
    draft: str = Field(description="catalog model name or HF config.json path of the draft model")
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
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


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
