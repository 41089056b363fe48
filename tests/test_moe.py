"""Mixture-of-Experts and MLA models: catalog entries, routing statistics, the MoE block's cost, EP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _models import h100

from simulator import ops
from simulator.config import LayoutConfig, PrecisionConfig
from simulator.errors import ConfigError
from simulator.hardware.profile import load_hardware
from simulator.memory import kv_bytes_per_token
from simulator.model import load_model
from simulator.model.moe import RoutingProfile, expected_unique_experts, expert_popularity, route_sample
from simulator.step_cost import BatchShape, CostModel

CONFIGS = Path(__file__).parent / "data" / "model_configs"

# name -> (HF config file, published total params, published active params)
MOE = {
    "mixtral-8x7b": ("mistralai--Mixtral-8x7B-v0.1_config.json", 46.7e9, 12.9e9),
    "mixtral-8x22b": ("mistralai--Mixtral-8x22B-v0.1_config.json", 141e9, 39e9),
    "qwen3-235b-a22b": ("Qwen--Qwen3-235B-A22B_config.json", 235e9, 22e9),
    "deepseek-v3": ("deepseek-ai--DeepSeek-V3_config.json", 671e9, 37e9),
    "llama-4-scout": ("meta-llama--Llama-4-Scout-17B-16E-Instruct_config.json", 109e9, 17e9),
    "llama-4-maverick": ("meta-llama--Llama-4-Maverick-17B-128E-Instruct_config.json", 400e9, 17e9),
    "gpt-oss-120b": ("openai--gpt-oss-120b_config.json", 116.8e9, 5.13e9),
}
# HF key (any of) -> spec field
HF_FIELDS = {
    ("num_hidden_layers",): "num_layers",
    ("hidden_size",): "hidden_size",
    ("num_attention_heads",): "num_attention_heads",
    ("vocab_size",): "vocab_size",
    ("num_local_experts", "num_experts", "n_routed_experts"): "num_experts",
    ("num_experts_per_tok",): "num_experts_per_token",
    ("kv_lora_rank",): "kv_lora_rank",
    ("first_k_dense_replace",): "num_dense_layers",
}


@pytest.mark.parametrize("name", sorted(MOE))
def test_moe_catalog_counts_match_published(name: str) -> None:
    """Total within 1.5% (Llama-4's published counts include a ~1B vision encoder); active within 12%
    (gpt-oss's 5.13B leaves out the 0.58B input embedding this count includes)."""
    spec = load_model(name)
    _, total, active = MOE[name]
    assert spec.is_moe and spec.published_params == total
    assert spec.num_params == pytest.approx(total, rel=0.015)
    assert spec.num_active_params == pytest.approx(active, rel=0.12)
    assert spec.num_active_params < spec.num_params / 2.5


@pytest.mark.parametrize("name", sorted(MOE))
def test_moe_catalog_agrees_with_its_hf_config(name: str) -> None:
    config = json.loads((CONFIGS / MOE[name][0]).read_text())
    config = config.get("text_config", config)
    spec = load_model(name)
    for keys, field in HF_FIELDS.items():
        for key in keys:
            if key in config:
                assert getattr(spec, field) == config[key], (key, field)


def test_moe_layer_counts() -> None:
    assert load_model("deepseek-v3").num_moe_layers == 61 - 3
    assert load_model("llama-4-maverick").num_moe_layers == 24  # every other layer
    assert load_model("llama-4-scout").num_moe_layers == 48
    assert load_model("llama-3.1-8b").num_moe_layers == 0


def test_mla_kv_bytes_per_token_of_deepseek_v3_by_hand() -> None:
    """61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes; GQA-style caching of its 128
    heads x (K 192 + V 128) would need 70x more."""
    spec = load_model("deepseek-v3")
    assert kv_bytes_per_token(spec, "bf16") == 61 * (512 + 64) * 2 == 70_272
    assert kv_bytes_per_token(spec, "fp8") == 35_136
    assert 61 * 128 * (192 + 128) * 2 / 70_272 > 70


def test_unique_experts_for_64_tokens_top8_of_256_by_hand() -> None:
    """256 x (1 - (1 - 8/256)^64) = 256 x (1 - 0.96875^64) = 256 x (1 - 0.13110) = 222.4."""
    assert expected_unique_experts(64, 8, 256) == pytest.approx(222.44, abs=0.01)
    assert expected_unique_experts(1, 8, 256) == pytest.approx(8.0)
    assert expected_unique_experts(4096, 8, 256) == pytest.approx(256.0)
    rng = np.random.default_rng(0)
    popularity = expert_popularity(256, 0.0, rng)
    hits = [np.count_nonzero(route_sample(64, 8, popularity, rng)) for _ in range(200)]
    assert np.mean(hits) == pytest.approx(222.44, rel=0.01)


def test_each_token_gets_k_distinct_experts() -> None:
    rng = np.random.default_rng(1)
    counts = route_sample(100, 8, expert_popularity(256, 1.0, rng), rng)
    assert counts.sum() == 800


def test_skew_raises_the_slowest_gpus_load() -> None:
    def profile(skew: float) -> RoutingProfile:
        return RoutingProfile.sample(256, 8, 8, skew, np.random.default_rng(3), lambda u, a: a)

    uniform, skewed = profile(0.0), profile(1.2)
    assert uniform.at(1024).imbalance_frac < 0.1
    assert skewed.at(1024).imbalance_frac > 2 * uniform.at(1024).imbalance_frac
    assert skewed.at(1024).assignments > uniform.at(1024).assignments
    assert uniform.at(1024).assignments == pytest.approx(1024 * 8 / 8, rel=0.1)


def test_expert_weight_reads_grow_with_batch() -> None:
    """Mixtral decode: one token reads 2 of 8 experts (~active params); 256 tokens read all (~total)."""
    spec = load_model("mixtral-8x7b")
    cost = CostModel.build(spec, h100(), PrecisionConfig(), LayoutConfig(tp=2))
    one = cost.step(BatchShape(num_decode_tokens=1, decode_kv_tokens=100, num_logit_tokens=1))
    many = cost.step(BatchShape(num_decode_tokens=256, decode_kv_tokens=25_600, num_logit_tokens=256))
    assert one.num_bytes == pytest.approx(spec.num_active_params * 2, rel=0.1)
    assert spec.num_params * 2 < many.num_bytes < spec.num_params * 2 * 1.15  # + routed activations
    assert cost.moe_unique_experts(1) == pytest.approx(2.0)
    assert cost.moe_unique_experts(256) == pytest.approx(8.0)


def test_moe_time_and_alltoall_ops() -> None:
    times = [ops.moe_time_s("h100-sxm", "deepseek-v3", t, tp=8, ep=8, weights="fp8") for t in (1, 64, 4096)]
    assert times == sorted(times) and times[0] > 0
    # at one token the whole-expert layout loads one GPU with several experts: slower than sharding
    assert times[0] > ops.moe_time_s("h100-sxm", "deepseek-v3", 1, tp=8, ep=1, weights="fp8")
    assert ops.alltoall_time_s("h100-sxm", 8e6, 8) == pytest.approx(3e-6 + 7 / 8 * 8e6 / (450e9 * 0.8))
    with pytest.raises(ConfigError, match="Mixture-of-Experts"):
        ops.moe_time_s("h100-sxm", "llama-3.1-8b", 8)


def test_ep_dispatch_is_an_alltoall_per_moe_layer() -> None:
    spec, hw = load_model("qwen3-235b-a22b"), load_hardware("h200-sxm")
    shape = BatchShape(num_decode_tokens=64, decode_kv_tokens=64_000, num_logit_tokens=64)
    sharded = CostModel.build(spec, hw, PrecisionConfig(weights="fp8"), LayoutConfig(tp=8))
    spread = CostModel.build(spec, hw, PrecisionConfig(weights="fp8"), LayoutConfig(tp=8, ep=8))
    per_layer_a2a = ops.alltoall_time_s(hw, 64 / 8 * 8 * 4096 * 2, 8)
    allreduce = ops.allreduce_time_s(hw, 64 * 4096 * 2, 8)
    assert spread.step(shape).comm_s - sharded.step(shape).comm_s == pytest.approx(
        94 * (2 * per_layer_a2a - allreduce), rel=1e-9
    )
    assert spread.moe_imbalance_frac(64) > 0.0 == sharded.moe_imbalance_frac(64)


def test_invalid_expert_layouts_are_rejected() -> None:
    spec = load_model("mixtral-8x7b")
    with pytest.raises(ConfigError, match=r"layout\.ep = 4.*1 or layout\.tp = 2"):
        CostModel.build(spec, h100(), PrecisionConfig(), LayoutConfig(tp=2, ep=4))
    with pytest.raises(ConfigError, match=r"layout\.ep = 16.*divisor of the 8 routed experts"):
        CostModel.build(spec, h100(), PrecisionConfig(), LayoutConfig(tp=16, ep=16))
    with pytest.raises(ConfigError, match=r"layout\.ep = 2.*dense"):
        CostModel.build(load_model("llama-3.1-8b"), h100(), PrecisionConfig(), LayoutConfig(tp=2, ep=2))


def test_routing_is_seeded() -> None:
    spec = load_model("mixtral-8x7b")
    layout = LayoutConfig(tp=8, ep=8, expert_skew=1.0)
    a = CostModel.build(spec, h100(), PrecisionConfig(), layout, seed=5).moe_imbalance_frac(300)
    b = CostModel.build(spec, h100(), PrecisionConfig(), layout, seed=5).moe_imbalance_frac(300)
    c = CostModel.build(spec, h100(), PrecisionConfig(), layout, seed=6).moe_imbalance_frac(300)
    assert a == b != c
