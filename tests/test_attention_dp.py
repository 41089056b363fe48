"""Attention data-parallelism with expert parallelism (DeepSeek-style serving): validation, memory fit,
the slowest rank's step, and the direction against TP attention."""

from __future__ import annotations

import pytest
from _models import h100

from simulator import Scenario, ops, simulate
from simulator.config import LayoutConfig, PrecisionConfig, SchedulerConfig
from simulator.errors import ConfigError
from simulator.hardware.profile import load_hardware
from simulator.memory import plan_memory, weights_bytes_per_gpu
from simulator.model import load_model
from simulator.step_cost import BatchShape, CostModel

FP4 = PrecisionConfig(weights="fp4", kv_cache="fp8")
ADP = LayoutConfig(tp=8, ep=8, attention_dp=True)
TP8 = LayoutConfig(tp=8, ep=8)


def _decode(batch: int, kv_len: int = 4000) -> BatchShape:
    return BatchShape(num_decode_tokens=batch, decode_kv_tokens=batch * kv_len, num_logit_tokens=batch)


@pytest.mark.parametrize(
    ("model", "layout", "match"),
    [
        ("llama-3.1-8b", LayoutConfig(tp=2, attention_dp=True), r"layout\.attention_dp = True.*dense"),
        ("mixtral-8x7b", LayoutConfig(tp=2, ep=1, attention_dp=True), r"layout\.ep = layout\.tp = 2"),
        ("mixtral-8x7b", LayoutConfig(attention_dp=True), r"layout\.tp >= 2"),
        ("mixtral-8x7b", LayoutConfig(tp=2, ep=2, pp=2, attention_dp=True), r"layout\.pp = 2"),
    ],
)
def test_invalid_attention_dp_layouts_are_rejected(model: str, layout: LayoutConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CostModel.build(load_model(model), h100(), PrecisionConfig(), layout)


def test_heads_need_not_divide_the_attention_dp_degree() -> None:
    """Mixtral's 8 KV heads forbid tp = 16 with TP attention; attention-DP does not split heads."""
    spec = load_model("mixtral-8x7b")
    with pytest.raises(ConfigError, match=r"layout\.ep = 16"):
        CostModel.build(spec, h100(), PrecisionConfig(), LayoutConfig(tp=16, ep=16, attention_dp=True))
    CostModel.build(spec, h100(), PrecisionConfig(), LayoutConfig(tp=8, ep=8, attention_dp=True))


def test_attention_dp_memory_replicates_attention_and_pools_kv_per_gpu() -> None:
    """DeepSeek-V3 fp4 on 8xB300: a GPU holds everything but the routed experts whole, 1/8 of those, and
    caches its own sequences' latents: 8 pools of what one GPU fits."""
    spec, hw = load_model("deepseek-v3"), load_hardware("b300")
    routed = spec.num_moe_layers * spec.num_experts * spec.expert_params * 0.5  # fp4 bytes, all GPUs
    whole = weights_bytes_per_gpu(spec, "fp4", 1)
    assert weights_bytes_per_gpu(spec, "fp4", 8, attention_dp=True) == pytest.approx(whole - routed * 7 / 8)
    sched = SchedulerConfig()
    dp_plan = plan_memory(spec, hw, FP4, ADP, sched)
    tp_plan = plan_memory(spec, hw, FP4, TP8, sched)
    assert dp_plan.num_kv_pools == 8 and dp_plan.num_kv_blocks % 8 == 0
    per_gpu_free = (
        dp_plan.usable_bytes_per_gpu
        - dp_plan.weights_bytes_per_gpu
        - dp_plan.activation_bytes_per_gpu
        - dp_plan.runtime_reserve_bytes_per_gpu
    )
    latent_bytes = 61 * 576 * 1  # fp8 MLA latent per token, whole on the GPU that owns the sequence
    assert dp_plan.kv_bytes_per_token_per_gpu == latent_bytes
    assert dp_plan.num_kv_blocks == 8 * int(per_gpu_free // (16 * latent_bytes))
    assert dp_plan.weights_bytes_per_gpu > tp_plan.weights_bytes_per_gpu
    assert dp_plan.max_kv_tokens > 6 * tp_plan.max_kv_tokens


def test_the_slowest_rank_sets_the_step() -> None:
    """8 ranks: 8 sequences put one on each rank, a 9th makes one rank run two, as do 16; each MoE
    layer's all-to-alls carry only the slowest rank's own tokens (so 9 and 16 send alike)."""
    spec, hw = load_model("deepseek-v3"), load_hardware("b300")
    cost = CostModel.build(spec, hw, FP4, ADP)
    one, eight, nine, sixteen = (cost.step(_decode(n)) for n in (1, 8, 9, 16))
    assert one.time_s < eight.time_s < nine.time_s <= sixteen.time_s
    assert nine.comm_s == sixteen.comm_s > eight.comm_s
    a2a = ops.alltoall_time_s(hw, 2 * 8 * 7168 * 2, 8)  # 2 tokens x top-8 x hidden x bf16
    assert nine.comm_s == pytest.approx(spec.num_moe_layers * 2 * a2a)


def test_attention_dp_reads_an_eighth_of_the_latent_cache_per_gpu() -> None:
    """At 1,024 decodes of 4,000 KV tokens TP attention reads every sequence's latent on every GPU;
    attention-DP reads 128 sequences' per GPU and needs no all-reduce: well over 1.5x faster."""
    spec, hw = load_model("deepseek-v3"), load_hardware("b300")
    dp_s = CostModel.build(spec, hw, FP4, ADP).decode_step_time_s(1024, 4000)
    tp_s = CostModel.build(spec, hw, FP4, TP8).decode_step_time_s(1024, 4000)
    assert tp_s > 1.5 * dp_s


def test_attention_dp_runs_end_to_end() -> None:
    scenario = Scenario.from_dict(
        {
            "model": "deepseek-v3",
            "hardware": "b300",
            "precision": {"weights": "fp4", "kv_cache": "fp8"},
            "layout": {"tp": 8, "ep": 8, "attention_dp": True},
            "workload": {"num_requests": 40, "rate_per_s": 20.0, "output_tokens": 32},
        }
    )
    summary = simulate(scenario).summary()
    assert summary["num_gpus"] == 8
    assert summary["num_completed"] == 40


def test_a_request_must_fit_one_attention_dp_gpu() -> None:
    """Each rank caches its own sequences: at 35% of an H100 two ranks hold 372 blocks each (5,952
    tokens), so an 8,000-token prompt that the pooled 744 blocks would hold is rejected, naming the GPU."""
    scenario = Scenario.from_dict(
        {
            "model": "mixtral-8x7b",
            "hardware": "h100-sxm",
            "precision": {"weights": "fp8"},
            "layout": {"tp": 2, "ep": 2, "attention_dp": True},
            "scheduler": {"gpu_memory_utilization": 0.35},
            "workload": {"num_requests": 3, "rate_per_s": 1.0, "input_tokens": 8000, "output_tokens": 8},
        }
    )
    result = simulate(scenario)
    assert result.resolved.memory.num_kv_blocks == 744
    assert result.summary()["num_rejected"] == 3
    assert set(result.requests["reject_reason"]) == {
        "needs 501 KV blocks at its last token, an attention-DP GPU has 372"
    }
