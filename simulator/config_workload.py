"""Workload and SLO configuration: lengths, arrivals, rate profiles, shared prefixes, request classes (L1).

Split from ``simulator.config`` (which re-exports every name here): the frozen pydantic models a
scenario's ``workload`` and ``slo`` keys validate against.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class SessionConfig(BaseModel):
    """Multi-turn conversations: each arrival starts a session of several turns.

    Turn i's prompt is every earlier turn (prompts and answers) plus a new user message of
    ``input_tokens``; its answer has ``output_tokens``. The next turn is sent ``think_time_s`` after the
    answer ends (fixed, or exponential with that mean).
    """

    model_config = _FROZEN
    num_turns: LengthSpec = Field(4, description="turns per session (an int or a length distribution)")
    think_time_s: float = Field(5.0, ge=0, le=1e6, description="user think time between turns (mean)")
    think_time_dist: Literal["fixed", "exponential"] = Field("exponential", description="how it varies")


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
    sessions: SessionConfig | None = Field(
        None,
        description="multi-turn conversations: arrivals (and num_requests) start sessions; each turn's "
        "prompt is the conversation so far plus input_tokens",
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
        closed_or_trace = self.arrival in ("trace", "concurrency")
        if self.sessions is not None and (self.prefix is not None or closed_or_trace):
            raise ValueError(
                "workload.sessions needs a synthetic open-loop arrival (poisson, gamma, burst) and no "
                "workload.prefix (a session's earlier turns are its prefix)"
            )
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
