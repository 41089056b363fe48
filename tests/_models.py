"""The models and hardware the cost-model tests use: catalog entries and H100 variants."""

from __future__ import annotations

from simulator.hardware.profile import HardwareProfile, load_hardware
from simulator.model import ModelSpec, load_model


def llama_8b() -> ModelSpec:
    """meta-llama/Llama-3.1-8B (the catalog spec; its numbers are checked against config.json)."""
    return load_model("llama-3.1-8b")


def llama_70b() -> ModelSpec:
    """meta-llama/Llama-3.1-70B."""
    return load_model("llama-3.1-70b")


def llama_405b() -> ModelSpec:
    """meta-llama/Llama-3.1-405B."""
    return load_model("llama-3.1-405b")


def h100() -> HardwareProfile:
    """The bundled H100 SXM profile."""
    return load_hardware("h100-sxm")


def h100_variant(**changes: object) -> HardwareProfile:
    """The H100 profile with some numbers changed (e.g. an H200: more HBM, more bandwidth)."""
    data = h100().model_dump()
    data.update(changes)
    return HardwareProfile.model_validate(data)


def h200_like() -> HardwareProfile:
    """H100 silicon with H200 memory: 141 GB HBM3e at 4.8 TB/s (NVIDIA H200 datasheet)."""
    return h100_variant(name="h200-like", hbm_bytes=141e9, hbm_bandwidth_bytes_per_s=4.8e12)
