"""Model specs the cost-model tests build directly (numbers from the Hugging Face config.json files)."""

from __future__ import annotations

from simulator.hardware.profile import HardwareProfile, load_hardware
from simulator.model.spec import ModelSpec


def llama_8b() -> ModelSpec:
    """meta-llama/Llama-3.1-8B."""
    return ModelSpec(
        name="llama-3.1-8b",
        num_layers=32,
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=128256,
        max_position_embeddings=131072,
    )


def llama_70b() -> ModelSpec:
    """meta-llama/Llama-3.1-70B."""
    return ModelSpec(
        name="llama-3.1-70b",
        num_layers=80,
        hidden_size=8192,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=28672,
        vocab_size=128256,
        max_position_embeddings=131072,
    )


def llama_405b() -> ModelSpec:
    """meta-llama/Llama-3.1-405B."""
    return ModelSpec(
        name="llama-3.1-405b",
        num_layers=126,
        hidden_size=16384,
        num_attention_heads=128,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=53248,
        vocab_size=128256,
        max_position_embeddings=131072,
    )


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
