"""Total cost per million output tokens (step 6 of the decision framework), in four dimensions.

TCO per token = (capital + operations + engineering) / lifetime output tokens, with the paid capacity
that sits unused split out as its own dimension, so the four parts add up to the total:

- capital: whole nodes bought (``ceil(gpus / gpus_per_node)`` x node price, even when fewer GPUs are
  needed), amortized over ``lifetime_years``; the share the work actually uses. The node price is
  ``node_price_usd`` when set (one price for every profile), else the example price of the hardware
  profile in ``node_price_usd_by_hardware``.
- operations: power at TDP x busy fraction x PUE x $/kWh for the GPUs that run; or, when
  ``cloud_usd_per_gpu_hour`` is set, renting the GPUs instead of buying them (no capital, no power bill);
  the share the work uses.
- idle capacity: the opportunity cost of paid hours not used: (capital + rent) x (1 - used fraction),
  the used fraction being busy GPU time over paid GPU time (idle GPUs of a partly used node count).
- engineering: a fixed cost (tuning, benchmarking, operations staff) spread over the lifetime tokens.

The deployment is assumed to serve the simulated load (its output tokens per second and its busy
fraction) for its whole lifetime. Default inputs are EXAMPLES as of 2026-11, not quotes: override them
with a YAML file (``CostInputs.from_yaml``) or dotted overrides (``--cost-set usd_per_kwh=0.2``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.config import set_dotted
from simulator.datafiles import read_yaml_mapping
from simulator.errors import ConfigError, describe_validation_error

HOURS_PER_YEAR = 24 * 365
PRICES_AS_OF = "2026-11"
# EXAMPLE prices of one 8-GPU server (GPUs, CPUs, memory, NICs), as of PRICES_AS_OF: rough street prices
# for illustration, not quotes. Override them (CostInputs.node_price_usd or node_price_usd_by_hardware).
EXAMPLE_NODE_PRICE_USD: dict[str, float] = {
    "a100-sxm": 150_000.0,
    "h100-sxm": 300_000.0,
    "h200-sxm": 350_000.0,
    "b200": 450_000.0,
    "b300": 550_000.0,
    "mi300x": 250_000.0,
}
# EXAMPLE on-demand rental prices per GPU-hour, as of PRICES_AS_OF (illustrative, not quotes).
EXAMPLE_CLOUD_USD_PER_GPU_HOUR: dict[str, float] = {
    "a100-sxm": 1.3,
    "h100-sxm": 2.5,
    "h200-sxm": 3.5,
    "b200": 5.0,
    "b300": 6.5,
    "mi300x": 2.5,
}


class CostInputs(BaseModel):
    """The four cost dimensions' inputs. Defaults are examples dated 2026-11; override them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    as_of: str = Field(PRICES_AS_OF, description="when the example prices were set")
    node_price_usd: float | None = Field(
        None, ge=0, description="one node's price for every profile (None: node_price_usd_by_hardware)"
    )
    node_price_usd_by_hardware: dict[str, float] = Field(
        default_factory=lambda: dict(EXAMPLE_NODE_PRICE_USD),
        description="examples (2026-11): one 8-GPU server of each profile, bought",
    )
    lifetime_years: float = Field(4.0, gt=0, le=20, description="amortization period of the hardware")
    usd_per_kwh: float = Field(0.12, ge=0, description="example (2026-11): industrial electricity price")
    pue: float = Field(1.3, ge=1, le=5, description="power usage effectiveness: facility / IT power")
    cloud_usd_per_gpu_hour: float | None = Field(
        None, ge=0, description="rent instead of buy (example 2026-11: 2.5 for an H100); None: owned"
    )
    engineering_usd: float = Field(
        150_000.0, ge=0, description="example (2026-11): tuning and benchmarking labour over the lifetime"
    )

    def node_price_for(self, hardware: str | None) -> float:
        """The price of one node of ``hardware``: node_price_usd if set, else the per-profile table."""
        if self.node_price_usd is not None:
            return self.node_price_usd
        if hardware is not None and hardware in self.node_price_usd_by_hardware:
            return self.node_price_usd_by_hardware[hardware]
        known = ", ".join(sorted(self.node_price_usd_by_hardware))
        raise ConfigError(
            "cost inputs: node_price_usd",
            hardware,
            f"no node price for this hardware; set node_price_usd (or node_price_usd_by_hardware.{hardware}"
            f"), or rent with cloud_usd_per_gpu_hour (profiles with an example price: {known})",
        )

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> CostInputs:
        """Read inputs from a YAML mapping (None: the defaults), then apply dotted ``overrides``.

        A ``node_price_usd_by_hardware`` table (in the file or an override such as
        ``node_price_usd_by_hardware.b300=600000``) adds to the example prices rather than replacing them.
        """
        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError("cost inputs", str(path), "no such file; give a YAML of CostInputs keys")
            data = dict(read_yaml_mapping(path, "cost inputs"))
        table = data.get("node_price_usd_by_hardware") or {}
        if isinstance(table, Mapping):  # a file or override adds to (or replaces) the example prices
            data["node_price_usd_by_hardware"] = {**EXAMPLE_NODE_PRICE_USD, **table}
        for key, value in (overrides or {}).items():
            set_dotted(data, key, value)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            known = ", ".join(cls.model_fields)
            raise ConfigError(
                "cost inputs", data, f"{describe_validation_error(exc)} (keys: {known})"
            ) from None


class CostBreakdown(BaseModel):
    """US dollars per million output tokens, by dimension, and what they were computed from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    capital_usd_per_mtok: float
    operations_usd_per_mtok: float
    idle_usd_per_mtok: float
    engineering_usd_per_mtok: float
    num_nodes: int  # bought (0 when rented)
    num_paid_gpus: int
    used_frac: float  # busy GPU time over paid GPU time
    lifetime_output_tokens: float

    @property
    def total_usd_per_mtok(self) -> float:
        """The sum of the four dimensions."""
        return (
            self.capital_usd_per_mtok
            + self.operations_usd_per_mtok
            + self.idle_usd_per_mtok
            + self.engineering_usd_per_mtok
        )


def cost_per_mtok(
    inputs: CostInputs,
    *,
    num_gpus: int,
    gpus_per_node: int,
    tdp_w: float,
    output_tok_per_s: float,
    busy_frac: float,
    hardware: str | None = None,
) -> CostBreakdown:
    """Price a million output tokens of ``num_gpus`` GPUs that are busy ``busy_frac`` of the time.

    ``hardware`` (a profile name) picks the node price from ``inputs.node_price_usd_by_hardware``
    unless ``inputs.node_price_usd`` is set.
    """
    if not (output_tok_per_s > 0 and math.isfinite(output_tok_per_s)):
        raise ConfigError("output_tok_per_s", output_tok_per_s, "a positive throughput (tokens per second)")
    if not 0 <= busy_frac <= 1:
        raise ConfigError("busy_frac", busy_frac, "a fraction in [0, 1]")
    if num_gpus < 1 or gpus_per_node < 1:
        raise ConfigError("num_gpus", num_gpus, "at least one GPU, and at least one per node")
    hours = inputs.lifetime_years * HOURS_PER_YEAR
    tokens = output_tok_per_s * hours * 3600.0
    if inputs.cloud_usd_per_gpu_hour is not None:
        num_nodes, paid_gpus = 0, num_gpus
        capex_usd, rent_usd, power_usd = 0.0, num_gpus * inputs.cloud_usd_per_gpu_hour * hours, 0.0
    else:
        num_nodes = math.ceil(num_gpus / gpus_per_node)
        paid_gpus = num_nodes * gpus_per_node
        capex_usd, rent_usd = num_nodes * inputs.node_price_for(hardware), 0.0
        power_kw = num_gpus * tdp_w / 1000.0 * busy_frac * inputs.pue
        power_usd = power_kw * hours * inputs.usd_per_kwh
    used_frac = busy_frac * num_gpus / paid_gpus
    per_mtok = 1e6 / tokens
    return CostBreakdown(
        capital_usd_per_mtok=capex_usd * used_frac * per_mtok,
        operations_usd_per_mtok=(power_usd + rent_usd * used_frac) * per_mtok,
        idle_usd_per_mtok=(capex_usd + rent_usd) * (1 - used_frac) * per_mtok,
        engineering_usd_per_mtok=inputs.engineering_usd * per_mtok,
        num_nodes=num_nodes,
        num_paid_gpus=paid_gpus,
        used_frac=used_frac,
        lifetime_output_tokens=tokens,
    )


def run_cost(
    summary: Mapping[str, Any],
    *,
    gpus_per_node: int,
    tdp_w: float,
    inputs: CostInputs,
    hardware: str | None = None,
) -> CostBreakdown:
    """``cost_per_mtok`` for a run's summary (its GPUs, output throughput and busy fraction)."""
    return cost_per_mtok(
        inputs,
        hardware=hardware,
        num_gpus=int(summary["num_gpus"]),
        gpus_per_node=gpus_per_node,
        tdp_w=tdp_w,
        output_tok_per_s=float(summary["output_throughput_tok_s"]),
        busy_frac=min(max(float(summary["gpu_busy_frac"]), 0.0), 1.0),
    )
