"""Layouts (TP across nodes, PP, DP), precision fallbacks and memory fit: hand checks and directions."""

from __future__ import annotations

import pytest
from _models import h100, h100_variant, llama_8b, llama_70b, llama_405b

from simulator import Scenario, simulate
from simulator.config import LayoutConfig, PrecisionConfig, SchedulerConfig
from simulator.errors import ConfigError, DoesNotFitError
from simulator.hardware.profile import load_hardware
from simulator.memory import plan_memory, weights_bytes_per_gpu
from simulator.model import load_model
from simulator.parallel.comm import p2p_time_s
from simulator.parallel.layout import stage_layers
from simulator.step_cost import BatchShape, CostModel, pipeline_bubble_frac
from simulator.tradeoffs import NO_QUALITY

SCHED = SchedulerConfig()


def _decode(batch: int, kv_len: int = 1000) -> BatchShape:
    return BatchShape(num_decode_tokens=batch, decode_kv_tokens=batch * kv_len, num_logit_tokens=batch)


def test_405b_fits_fp8_on_8_h200_but_not_bf16_on_8_h100() -> None:
    """405.9B params: bf16 = 812 GB > 8 x 80 GB; fp8 = 406 GB + bf16 embeddings < 8 x 141 GB."""
    model, layout = llama_405b(), LayoutConfig(tp=8)
    plan = plan_memory(model, load_hardware("h200-sxm"), PrecisionConfig(weights="fp8"), layout, SCHED)
    assert plan.num_kv_blocks > 1000
    with pytest.raises(DoesNotFitError, match=r"llama-3\.1-405b with bf16 weights at tp=8 on h100-sxm"):
        plan_memory(model, h100(), PrecisionConfig(), layout, SCHED)


def test_mi300x_fits_a_model_an_h100_does_not() -> None:
    """Llama-3.1-70B in bf16 on one GPU: 141 GB of weights, under MI300X's 192 GB, over H100's 80 GB."""
    plan = plan_memory(llama_70b(), load_hardware("mi300x"), PrecisionConfig(), LayoutConfig(), SCHED)
    assert plan.num_kv_blocks > 0
    with pytest.raises(DoesNotFitError):
        plan_memory(llama_70b(), h100(), PrecisionConfig(), LayoutConfig(), SCHED)


PREFILL = BatchShape(
    num_prefill_tokens=8192,
    num_prefill_seqs=4,
    prefill_attn_pairs=4 * 2048 * 2049 / 2,
    prefill_kv_tokens=8192,
    num_logit_tokens=4,
)


def test_tp8_across_two_nodes_is_slower_than_within_one() -> None:
    """Same 8 GPUs, 4 per node: the all-reduces' scale-out part (50 GB/s NICs, 10 us hops) is added.
    Decode's 1 MB all-reduces are latency-bound (+9%); prefill's 134 MB ones bandwidth-bound (x2)."""
    four_per_node = h100_variant(gpus_per_node=4)
    one = CostModel.build(llama_70b(), h100(), PrecisionConfig(), LayoutConfig(tp=8))
    two = CostModel.build(llama_70b(), four_per_node, PrecisionConfig(), LayoutConfig(tp=8))
    for shape, factor in ((_decode(64), 1.05), (PREFILL, 1.8)):
        a, b = one.step(shape), two.step(shape)
        assert b.compute_s == pytest.approx(a.compute_s)
        assert b.comm_s > factor * a.comm_s
        assert b.time_s > a.time_s
    assert two.step(PREFILL).time_s > 1.15 * one.step(PREFILL).time_s


def test_mi300x_ring_sees_one_link_per_hop() -> None:
    """Same bytes, 8 GPUs: MI300X's ring hop has one 64 GB/s link, an H100's NVSwitch 450 GB/s."""
    mi = CostModel.build(llama_70b(), load_hardware("mi300x"), PrecisionConfig(), LayoutConfig(tp=8))
    nv = CostModel.build(llama_70b(), h100(), PrecisionConfig(), LayoutConfig(tp=8))
    assert mi.step(_decode(64)).comm_s > 1.5 * nv.step(_decode(64)).comm_s
    assert mi.step(PREFILL).comm_s > 4 * nv.step(PREFILL).comm_s


def test_fp8_gains_more_at_high_load_than_at_batch_1_on_h100() -> None:
    """Batch 1 is weight-bandwidth bound (fp8 halves the weights, not the attention or the kernel
    overheads); at high load fp8 also frees HBM for KV cache, so the batch grows."""

    def run(weights: str, kv: str) -> tuple[float, float]:
        layout, precision = LayoutConfig(tp=4), PrecisionConfig(weights=weights, kv_cache=kv)  # type: ignore[arg-type]
        batch1_s = CostModel.build(llama_70b(), h100(), precision, layout).decode_step_time_s(1, 512)
        scenario = Scenario.from_dict(
            {
                "model": "llama-3.1-70b",
                "layout": {"tp": 4},
                "precision": {"weights": weights, "kv_cache": kv},
                "workload": {
                    "arrival": "burst",
                    "num_requests": 300,
                    "input_tokens": 4096,
                    "output_tokens": 512,
                },
            }
        )
        return batch1_s, simulate(scenario).summary()["output_throughput_tok_s"]

    bf16_s, bf16_tput = run("bf16", "bf16")
    fp8_s, fp8_tput = run("fp8", "bf16")
    _, fp8_kv_tput = run("fp8", "fp8")
    batch1_gain = bf16_s / fp8_s
    assert 1.3 < batch1_gain < 2.0
    assert fp8_tput / bf16_tput > batch1_gain
    assert fp8_kv_tput / bf16_tput > fp8_tput / bf16_tput + 0.2


def test_fp8_visibly_raises_kv_capacity() -> None:
    layout = LayoutConfig(tp=4)
    bf16 = plan_memory(llama_70b(), h100(), PrecisionConfig(), layout, SCHED).max_kv_tokens
    fp8 = plan_memory(llama_70b(), h100(), PrecisionConfig(weights="fp8"), layout, SCHED).max_kv_tokens
    both = plan_memory(llama_70b(), h100(), PrecisionConfig(weights="fp8", kv_cache="fp8"), layout, SCHED)
    assert fp8 > 1.4 * bf16
    assert both.max_kv_tokens == pytest.approx(2 * fp8, rel=0.01)


@pytest.mark.parametrize(
    ("hardware", "weights", "compute", "note"),
    [
        ("h100-sxm", "fp8", "fp8", False),
        ("h100-sxm", "fp4", "bf16", True),
        ("h100-sxm", "int4", "bf16", True),
        ("b200", "fp4", "fp4", False),
        ("b300", "fp4", "fp4", False),
        ("mi300x", "fp4", "bf16", True),
        ("a100-sxm", "fp8", "bf16", True),
    ],
)
def test_native_compute_or_weight_only_fallback(
    hardware: str, weights: str, compute: str, note: bool
) -> None:
    precision = PrecisionConfig.model_validate({"weights": weights})
    cost = CostModel.build(llama_8b(), load_hardware(hardware), precision, LayoutConfig())
    assert cost.compute_dtype == compute
    assert (cost.precision_note is not None) == note


def test_int4_weights_are_a_quarter_of_bf16() -> None:
    model = llama_70b()
    bf16, int4 = weights_bytes_per_gpu(model, "bf16", 4), weights_bytes_per_gpu(model, "int4", 4)
    embeddings = 2 * model.vocab_size * model.hidden_size / 4 * 2  # stay bf16
    assert (int4 - embeddings) == pytest.approx((bf16 - embeddings) / 4, rel=0.01)


def test_pipeline_stages_split_layers_and_weights() -> None:
    assert [len(r) for r in stage_layers(80, 3)] == [27, 27, 26]
    model = llama_70b()
    one, two = weights_bytes_per_gpu(model, "bf16", 4), weights_bytes_per_gpu(model, "bf16", 4, pp=2)
    assert two == pytest.approx(one / 2, rel=0.03)
    with pytest.raises(ConfigError, match=r"layout\.pp = 81"):
        CostModel.build(model, h100(), PrecisionConfig(), LayoutConfig(pp=81))


def test_pipeline_bubble_and_micro_batches_by_hand() -> None:
    """pp = 4 with micro-batches in flight: one sequence leaves 3 of 4 slots idle, 4 or more none."""
    assert pipeline_bubble_frac(4, 1) == pytest.approx(3 / 4)
    assert pipeline_bubble_frac(4, 2) == pytest.approx(1 / 2)
    assert pipeline_bubble_frac(4, 64) == 0.0
    model, hw = llama_70b(), h100()
    flat = CostModel.build(model, hw, PrecisionConfig(), LayoutConfig(tp=2))
    piped = CostModel.build(model, hw, PrecisionConfig(), LayoutConfig(tp=2, pp=4))
    # 64 decodes: 4 micro-batches of 16 in flight; a round is 4 slots of a quarter model on 16 sequences
    p2p = p2p_time_s(hw, 16 * 8192 * 2, same_node=True)
    micro = flat.step(_decode(16))
    assert piped.step(_decode(64)).time_s == pytest.approx(micro.time_s + 4 * p2p, rel=1e-9)
    assert piped.pipeline_bubble_frac(64, kv_len=1000) == pytest.approx(p2p / (micro.time_s / 4 + p2p))
    # one sequence crosses the 4 stages alone: 3 of 4 slots idle, no faster than without PP
    one_p2p = p2p_time_s(hw, 8192 * 2, same_node=True)
    assert piped.step(_decode(1)).time_s == pytest.approx(flat.step(_decode(1)).time_s + 4 * one_p2p)
    assert piped.pipeline_bubble_frac(1) > 3 / 4
    # a 4 x 2048-token prefill: 4 micro-batches of one prompt, 4 slots of a quarter model each
    prompts = BatchShape(
        num_prefill_tokens=8192,
        num_prefill_seqs=4,
        prefill_attn_pairs=4 * 2048 * 2049 / 2,
        prefill_kv_tokens=8192,
        num_logit_tokens=4,
    )
    one = BatchShape(
        num_prefill_tokens=2048,
        num_prefill_seqs=1,
        prefill_attn_pairs=2048 * 2049 / 2,
        prefill_kv_tokens=2048,
        num_logit_tokens=1,
    )
    expected = flat.step(one).time_s + 4 * p2p_time_s(hw, 2048 * 8192 * 2, same_node=True)
    assert piped.step(prompts).time_s == pytest.approx(expected, rel=1e-9)
    assert piped.step(prompts).time_s < 0.6 * flat.step(prompts).time_s


def test_pp_keeps_stages_busy_at_large_decode_batches_but_not_at_batch_1() -> None:
    """Llama-3.1-8B on H100, 512 sequences of 2,048 KV tokens: pp = 2 on two GPUs prices each token at
    about forward(256) instead of forward(512), near twice one GPU's decode throughput (the old
    drain-every-step model gave 1.0x); at batch 1 the pipeline is no faster than one GPU and slower
    than tp = 2."""
    model, hw = llama_8b(), h100()
    one = CostModel.build(model, hw, PrecisionConfig(), LayoutConfig())
    pp2 = CostModel.build(model, hw, PrecisionConfig(), LayoutConfig(pp=2))
    tp2 = CostModel.build(model, hw, PrecisionConfig(), LayoutConfig(tp=2))
    big = 512
    speedup = one.decode_step_time_s(big, 2048) / pp2.decode_step_time_s(big, 2048)
    assert 1.7 < speedup <= 2.0
    assert pp2.pipeline_bubble_frac(big, 2048) < 0.01
    assert pp2.decode_step_time_s(1, 2048) >= one.decode_step_time_s(1, 2048)
    assert pp2.decode_step_time_s(1, 2048) > 1.3 * tp2.decode_step_time_s(1, 2048)
    assert pp2.pipeline_bubble_frac(1) >= 0.5


def test_pp_runs_end_to_end_and_reports_its_bubble() -> None:
    scenario = Scenario.from_dict(
        {
            "model": "llama-3.1-8b",
            "layout": {"tp": 1, "pp": 2, "dp": 2},
            "workload": {"num_requests": 40, "rate_per_s": 20.0, "output_tokens": 32},
        }
    )
    summary = simulate(scenario).summary()
    assert summary["num_gpus"] == 4
    assert summary["num_completed"] == 40
    assert 0.0 < summary["pipeline_bubble_frac"] <= 0.5
    assert summary["quality"] == NO_QUALITY


def test_a_user_quality_table_is_reported_as_given() -> None:
    entry = {"task": "mmlu", "metric": "accuracy_delta_pts", "value": -0.4, "source": "my eval 2026-01"}
    scenario = Scenario.from_dict(
        {
            "model": "mixtral-8x7b",
            "layout": {"tp": 2, "ep": 2, "expert_skew": 0.8},
            "precision": {"weights": "fp8", "quality": [entry]},
            "workload": {"num_requests": 30, "rate_per_s": 10.0, "output_tokens": 16},
        }
    )
    summary = simulate(scenario).summary()
    assert summary["quality"] == "mmlu accuracy_delta_pts -0.4 (my eval 2026-01)"
    assert summary["moe_imbalance_frac"] > 0.0
    assert summary["weights_dtype"] == "fp8" and summary["compute_dtype"] == "fp8"


def test_moe_models_fit_where_published_deployments_run() -> None:
    """DeepSeek-V3 fp8 (~690 GB) fits 8 x H200 (1128 GB) but not 8 x H100 (640 GB)."""
    model, layout = load_model("deepseek-v3"), LayoutConfig(tp=8, ep=8)
    fp8 = PrecisionConfig(weights="fp8")
    assert plan_memory(model, load_hardware("h200-sxm"), fp8, layout, SCHED).num_kv_blocks > 0
    with pytest.raises(DoesNotFitError):
        plan_memory(model, h100(), fp8, layout, SCHED)
