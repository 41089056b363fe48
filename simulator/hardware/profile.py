"""HardwareProfile: one accelerator, as data (``hardware_profiles/<name>.yaml``), every number sourced.

Units: bytes, bytes/s, FLOP/s, seconds, watts. Bandwidths are per GPU and per direction (a link sold
as "900 GB/s bidirectional" is 450e9 bytes/s here). Peak FLOP/s are dense (no 2:4 sparsity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.datafiles import read_yaml_mapping, validate_file_data
from simulator.errors import ConfigError, UnknownNameError
from simulator.resources import hardware_profiles_dir

ScaleUpTopology = Literal["switch", "full_mesh"]

# Numeric fields that must carry a source in ``sources`` (nested dicts are checked key by key).
_SOURCED_FIELDS = (
    "hbm_bytes",
    "hbm_bandwidth_bytes_per_s",
    "peak_flops_per_s",
    "scaleup_bandwidth_bytes_per_s",
    "scaleout_bandwidth_bytes_per_s",
    "host_link_bandwidth_bytes_per_s",
    "gpus_per_node",
    "tdp_w",
    "compute_efficiency_frac",
    "memory_efficiency_frac",
    "comm_efficiency_frac",
    "kernel_overhead_s",
    "scaleup_latency_s",
    "scaleout_latency_s",
)


class HardwareProfile(BaseModel):
    """One accelerator type and the node it sits in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="catalog key, e.g. h100-sxm")
    display_name: str
    vendor: Literal["nvidia", "amd", "other"]
    hbm_bytes: float = Field(gt=0, description="HBM capacity per GPU (vendor GB = 1e9 bytes)")
    hbm_bandwidth_bytes_per_s: float = Field(gt=0, description="peak HBM bandwidth per GPU")
    peak_flops_per_s: dict[str, float] = Field(
        description="dense peak matrix FLOP/s (or OP/s for int8) per dtype; a key means the dtype is native"
    )
    scaleup_topology: ScaleUpTopology = Field(
        description="switch: NVSwitch-style all-to-all at full per-GPU bandwidth; "
        "full_mesh: point-to-point links, one link per GPU pair (MI300X Infinity Fabric)"
    )
    scaleup_bandwidth_bytes_per_s: float = Field(gt=0, description="per GPU, per direction, all links")
    scaleup_num_links: int = Field(ge=1, description="links per GPU (full_mesh: one per peer)")
    scaleup_latency_s: float = Field(ge=0, description="per-hop latency of a collective step in a node")
    scaleout_bandwidth_bytes_per_s: float = Field(gt=0, description="per GPU NIC bandwidth, per direction")
    scaleout_latency_s: float = Field(ge=0, description="per-hop latency of a collective step across nodes")
    host_link_bandwidth_bytes_per_s: float = Field(
        gt=0, description="GPU to host memory (PCIe), per direction"
    )
    gpus_per_node: int = Field(ge=1)
    tdp_w: float = Field(gt=0)
    compute_efficiency_frac: float = Field(gt=0, le=1, description="achievable fraction of peak FLOP/s")
    memory_efficiency_frac: float = Field(gt=0, le=1, description="achievable fraction of HBM bandwidth")
    comm_efficiency_frac: float = Field(gt=0, le=1, description="achievable fraction of link bandwidth")
    kernel_overhead_s: float = Field(ge=0, description="fixed cost per kernel (launch, tail), per op")
    efficiency_note: str = Field(description="where the efficiency factors come from")
    sources: dict[str, str] = Field(description="field name (or field.key) -> where the number comes from")

    @model_validator(mode="after")
    def _every_number_has_a_source(self) -> HardwareProfile:
        missing = [f for f in _SOURCED_FIELDS if f not in self.sources]
        missing += [
            f"peak_flops_per_s.{k}"
            for k in self.peak_flops_per_s
            if f"peak_flops_per_s.{k}" not in self.sources and "peak_flops_per_s" not in self.sources
        ]
        if missing:
            raise ValueError(f"hardware profile {self.name!r} has numbers without a source: {missing}")
        if "bf16" not in self.peak_flops_per_s:
            raise ValueError(f"hardware profile {self.name!r} must give peak_flops_per_s.bf16")
        return self

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``; raises ConfigError if the dtype is not native."""
        try:
            return self.peak_flops_per_s[dtype]
        except KeyError:
            raise ConfigError(
                f"{self.name}.peak_flops_per_s", dtype, f"native dtypes are {sorted(self.peak_flops_per_s)}"
            ) from None

    def is_native(self, dtype: str) -> bool:
        """Whether the tensor cores compute in ``dtype``."""
        return dtype in self.peak_flops_per_s


def list_hardware() -> list[str]:
    """Names of the bundled hardware profiles."""
    return sorted(p.stem for p in hardware_profiles_dir().glob("*.yaml"))


def load_hardware(name_or_path: str | Path) -> HardwareProfile:
    """A bundled profile by name (``h100-sxm``) or a user's YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = hardware_profiles_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownNameError("hardware", str(name_or_path), list_hardware())
    if not path.is_file():
        raise ConfigError("hardware", str(name_or_path), "no such file; give a profile name or a YAML path")
    return validate_file_data(HardwareProfile, read_yaml_mapping(path, "a hardware profile"), path)
