"""From raw measurements to written files: the roofline to fit against, the table, a CPU profile, and
predicted-vs-measured whole-step errors before and after calibration. Units: seconds; errors in %.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from calibration.fit import build_table, measured_roofline
from simulator.config import LayoutConfig, PrecisionConfig
from simulator.errors import ConfigError
from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile, load_hardware
from simulator.model.costs import causal_pairs
from simulator.model.spec import ModelSpec
from simulator.step_cost import BatchShape, CostModel

_PLACEHOLDER = "not measured by trilemma calibrate (one CPU device): a placeholder so the profile validates"


@dataclass(frozen=True)
class StepError:
    """One whole-step case: measured seconds, predictions before and after calibration."""

    label: str
    measured_s: float
    before_s: float
    after_s: float

    @property
    def before_pct(self) -> float:
        """Absolute error of the spec-only prediction, % of measured."""
        return abs(self.before_s - self.measured_s) / self.measured_s * 100.0

    @property
    def after_pct(self) -> float:
        """Absolute error of the calibrated prediction, % of measured."""
        return abs(self.after_s - self.measured_s) / self.measured_s * 100.0


@dataclass(frozen=True)
class Calibration:
    """What one fit produced."""

    table: CalibrationTable
    hardware: HardwareProfile
    hardware_is_new: bool  # a CPU profile built from the measurements (to be written beside the table)
    steps: list[StepError]


def cpu_profile_name() -> str:
    """``cpu-<machine>``, e.g. cpu-x86_64."""
    return "cpu-" + re.sub(r"[^a-z0-9]+", "-", platform.machine().lower()).strip("-")


def cpu_profile(raw: dict[str, Any], name: str, peaks: dict[str, float], bandwidth: float) -> HardwareProfile:
    """A profile of the measured CPU: best measured FLOP/s and bandwidth, efficiencies 1, and the
    fastest small memory-bound op as the per-kernel overhead (the spec-only baseline)."""
    small = [m["time_s"] for m in raw["measurements"] if m["op_class"] == "elementwise"]
    try:
        mem_bytes = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        mem_bytes = 16e9
    measured = f"measured by trilemma calibrate on {raw['device']}, {raw['driver']} ({raw['date']})"
    fields = (
        "hbm_bytes",
        "hbm_bandwidth_bytes_per_s",
        "peak_flops_per_s",
        "compute_efficiency_frac",
        "memory_efficiency_frac",
        "kernel_overhead_s",
    )
    sources = {f: measured for f in fields}
    sources["hbm_bytes"] = "host memory (os.sysconf)"
    sources["compute_efficiency_frac"] = sources["memory_efficiency_frac"] = "1: the peaks are measured bests"
    for f in (
        "scaleup_bandwidth_bytes_per_s",
        "scaleup_latency_s",
        "scaleout_bandwidth_bytes_per_s",
        "scaleout_latency_s",
        "host_link_bandwidth_bytes_per_s",
        "gpus_per_node",
        "tdp_w",
        "comm_efficiency_frac",
    ):
        sources[f] = _PLACEHOLDER
    return HardwareProfile(
        name=name,
        display_name=f"{raw['driver'].removeprefix('cpu: ')} ({platform.machine()}) via JAX",
        vendor="other",
        hbm_bytes=mem_bytes,
        hbm_bandwidth_bytes_per_s=bandwidth,
        peak_flops_per_s=peaks,
        scaleup_topology="switch",
        scaleup_bandwidth_bytes_per_s=10e9,
        scaleup_num_links=1,
        scaleup_latency_s=1e-5,
        scaleout_bandwidth_bytes_per_s=1e9,
        scaleout_latency_s=1e-4,
        host_link_bandwidth_bytes_per_s=bandwidth,
        gpus_per_node=1,
        tdp_w=100.0,
        compute_efficiency_frac=1.0,
        memory_efficiency_frac=1.0,
        comm_efficiency_frac=1.0,
        kernel_overhead_s=min(small, default=0.0),
        efficiency_note="spec-only baseline of a measured CPU: peaks are the best measured rates; the "
        "calibration table beside it holds the measured efficiency curves",
        sources=sources,
    )


def step_model_spec(step_model: dict[str, int]) -> ModelSpec:
    """The ModelSpec of the Llama-shaped stack the whole steps ran."""
    return ModelSpec(name="calibration-step-model", max_position_embeddings=1 << 20, **step_model)


def step_shape(row: dict[str, Any]) -> BatchShape:
    """The BatchShape of one measured step (prefill: one prompt, no cache; decode: batch x kv_len)."""
    if row["kind"] == "prefill":
        t = row["tokens"]
        return BatchShape(
            num_prefill_tokens=t,
            num_prefill_seqs=1,
            prefill_attn_pairs=causal_pairs(t, 0),
            prefill_kv_tokens=t,
            num_logit_tokens=1,
        )
    b = row["batch"]
    return BatchShape(num_decode_tokens=b, decode_kv_tokens=b * row["kv_len"], num_logit_tokens=b)


def step_errors(raw: dict[str, Any], hardware: HardwareProfile, table: CalibrationTable) -> list[StepError]:
    """Every whole-step case predicted with the profile alone and with the table."""
    model = step_model_spec(raw["step_model"])
    before = CostModel.build(model, hardware, PrecisionConfig(), LayoutConfig())
    after = CostModel.build(model, hardware, PrecisionConfig(), LayoutConfig(), table)
    rows = []
    for s in raw["steps"]:
        shape = step_shape(s)
        label = f"prefill {s['tokens']}" if s["kind"] == "prefill" else f"decode {s['batch']}x{s['kv_len']}"
        rows.append(StepError(label, s["time_s"], before.step(shape).time_s, after.step(shape).time_s))
    return rows


def error_summary(rows: list[StepError]) -> dict[str, float]:
    """Median and worst absolute % error, before and after."""
    b, a = [r.before_pct for r in rows], [r.after_pct for r in rows]
    return {
        "median_before_pct": statistics.median(b),
        "worst_before_pct": max(b),
        "median_after_pct": statistics.median(a),
        "worst_after_pct": max(a),
    }


# JAX device kinds -> bundled profile names; the first pattern found in the device kind wins. PCIe and
# NVL parts have other clocks, power and memory than the SXM/OAM profiles: they get no default.
DEVICE_PROFILES = (
    ("H100 PCIe", None),
    ("H100 NVL", None),
    ("H100", "h100-sxm"),
    ("H200 NVL", None),
    ("H200", "h200-sxm"),
    ("B300", "b300"),
    ("B200", "b200"),
    ("A100-PCIE", None),
    ("A100", "a100-sxm"),
    ("MI300X", "mi300x"),
)


def profile_for_device(device: str) -> str | None:
    """The bundled profile a JAX device kind is, or None when there is none to assume."""
    for pattern, name in DEVICE_PROFILES:
        if pattern.lower() in device.lower():
            return name
    return None


def calibrate(raw: dict[str, Any], profile: str | None) -> Calibration:
    """Fit ``raw``: against the named profile's spec roofline (on an accelerator, ``profile`` None: the
    profile of the detected device), or, on a CPU backend with ``profile`` None or ``cpu-*``, against a
    CPU profile built from the measurements."""
    if raw["backend"] == "cpu" and (profile is None or profile.startswith("cpu")):
        peaks, bandwidth = measured_roofline(raw)
        hardware = cpu_profile(raw, profile or cpu_profile_name(), peaks, bandwidth)
        new = True
        source = f"trilemma calibrate on {raw['device']} ({raw['backend']}, jax {raw['jax_version']})"
    else:
        profile = profile or profile_for_device(raw["device"])
        if profile is None:
            raise ConfigError(
                "--profile", None, f"a bundled profile name for device {raw['device']!r}, e.g. h100-sxm"
            )
        hardware, new = load_hardware(profile), False
        peaks, bandwidth = dict(hardware.peak_flops_per_s), hardware.hbm_bandwidth_bytes_per_s
        source = f"trilemma calibrate on {raw['device']} ({raw['backend']}, jax {raw['jax_version']})"
    table = build_table(raw, hardware.name, source, peaks, bandwidth)
    return Calibration(table, hardware, new, step_errors(raw, hardware, table))


def write_outputs(result: Calibration, out_dir: Path) -> list[Path]:
    """Write ``<profile>.json`` (and the CPU profile's ``<profile>.yaml``) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.hardware.name
    table_path = out_dir / f"{name}.json"
    table_path.write_text(json.dumps(result.table.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
    paths = [table_path]
    if result.hardware_is_new:
        yaml_path = out_dir / f"{name}.yaml"
        text = yaml.safe_dump(result.hardware.model_dump(mode="json"), sort_keys=False)
        yaml_path.write_text(f"# {result.hardware.display_name}: written by trilemma calibrate\n{text}")
        paths.append(yaml_path)
    return paths
