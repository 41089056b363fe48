"""Speculative decoding: expected tokens per step, the verify step's shape, the draft's memory, and the
seed's trade (lower ITL at batch 1, lower throughput at a large batch)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from simulator import ConfigError, Scenario, simulate
from simulator.config import SpeculativeConfig
from simulator.resolve import resolve
from simulator.speculative import SpeculativeCostModel, _verify_shape, expected_tokens_per_step
from simulator.step_cost import BatchShape

DRAFT = {"draft": "llama-3.1-8b", "num_speculative_tokens": 4, "acceptance_rate": 0.7}


def _scenario(batch: int, speculative: dict[str, Any] | None, **extra: Any) -> Scenario:
    return Scenario.from_dict(
        {
            "model": "llama-3.1-70b",
            "precision": {"weights": "fp8"},
            "layout": {"tp": 4},
            "scheduler": {"speculative": speculative, "max_num_seqs": 512, **extra},
            "workload": {
                "arrival": "concurrency",
                "concurrency": batch,
                "num_requests": 3 * batch,
                "input_tokens": 512,
                "output_tokens": 256,
            },
        }
    )


def test_expected_tokens_per_step() -> None:
    spec = SpeculativeConfig(draft="llama-3.1-8b", num_speculative_tokens=4, acceptance_rate=0.8)
    assert expected_tokens_per_step(spec) == pytest.approx((1 - 0.8**5) / (1 - 0.8))  # 3.3616
    profile = SpeculativeConfig(draft="x", num_speculative_tokens=3, acceptance_profile=(0.9, 0.5, 0.5))
    assert expected_tokens_per_step(profile) == pytest.approx(1 + 0.9 + 0.45 + 0.225)
    with pytest.raises(ConfigError, match="one per speculative token"):
        Scenario.from_dict({"scheduler": {"speculative": {**DRAFT, "acceptance_profile": [0.5]}}})
    with pytest.raises(ConfigError, match=r"scheduler\.speculative\.acceptance_rate"):
        Scenario.from_dict({"scheduler": {"speculative": {**DRAFT, "acceptance_rate": 1.0}}})


def test_the_verify_step_is_a_k_plus_1_token_chunk_per_decoder() -> None:
    # two decoders holding 100 and 50 tokens (the newest uncomputed), k = 3: 4 queries each
    shape = _verify_shape(BatchShape(0, 0, 0.0, 0, 2, 150, 2), 3)
    assert shape.num_prefill_tokens == 8 and shape.num_prefill_seqs == 2 and shape.num_decode_tokens == 0
    assert shape.prefill_attn_pairs == 4 * 99 + 4 * 49 + 2 * (4 * 5 / 2)
    assert shape.prefill_kv_tokens == 150 + 2 * 3 and shape.num_logit_tokens == 8


def test_the_draft_takes_memory_and_prices_a_fraction_of_each_speculative_step() -> None:
    plain, spec = resolve(_scenario(1, None)), resolve(_scenario(1, DRAFT))
    assert isinstance(spec.cost, SpeculativeCostModel)
    # the 8B draft adds its weights to every GPU and its own KV to every block
    assert spec.memory.weights_bytes_per_gpu > plain.memory.weights_bytes_per_gpu
    assert spec.memory.num_kv_blocks < plain.memory.num_kv_blocks
    shape = BatchShape(0, 0, 0.0, 0, 1, 600, 1)
    whole = spec.cost.speculative_step(shape).time_s
    assert spec.cost.step(shape).time_s == pytest.approx(whole / spec.cost.expected_tokens)
    prefill = BatchShape(512, 1, 512 * 513 / 2, 512, 0, 0, 1)  # a prompt: target and draft both prefill
    assert spec.cost.step(prefill).time_s == pytest.approx(
        spec.cost.target.step(prefill).time_s + spec.cost.draft.step(prefill).time_s
    )
    with pytest.raises(ConfigError, match=r"scheduler\.speculative\.draft"):
        resolve(_scenario(1, {**DRAFT, "draft": "no-such-model"}))


def test_speculation_lowers_itl_at_batch_1_and_throughput_at_a_large_batch() -> None:
    one, one_spec = simulate(_scenario(1, None)).summary(), simulate(_scenario(1, DRAFT)).summary()
    big, big_spec = simulate(_scenario(256, None)).summary(), simulate(_scenario(256, DRAFT)).summary()
    # measured: 13.2 -> 9.9 ms at batch 1; 5,870 -> 4,570 output tok/s at batch 256 (70B fp8, tp=4)
    assert one_spec["itl_p50_s"] < 0.85 * one["itl_p50_s"]
    assert big_spec["output_throughput_tok_s"] < 0.9 * big["output_throughput_tok_s"]


def test_fast_mode_equals_step_mode_with_a_draft() -> None:
    step = simulate(_scenario(8, DRAFT, fast_mode=False))
    fast = simulate(_scenario(8, DRAFT, fast_mode=True))
    pd.testing.assert_frame_equal(step.requests, fast.requests)
    pd.testing.assert_frame_equal(step.steps, fast.steps)
