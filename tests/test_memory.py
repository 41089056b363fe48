"""Memory plan: KV bytes per token, weights per GPU, KV blocks by hand, and the does-not-fit advice."""

from __future__ import annotations

import math
import re

import pytest
from _models import h100, llama_8b, llama_70b, llama_405b

from simulator.config import LayoutConfig, PrecisionConfig, SchedulerConfig
from simulator.errors import ConfigError, DoesNotFitError
from simulator.memory import (
    RUNTIME_RESERVE_BYTES,
    kv_bytes_per_token,
    kv_bytes_per_token_per_gpu,
    plan_memory,
    weights_bytes_per_gpu,
)


def test_kv_bytes_per_token_llama_70b() -> None:
    assert kv_bytes_per_token(llama_70b(), "bf16") == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_bytes_per_token(llama_70b(), "fp8") == 327_680 / 2


def test_kv_bytes_per_gpu_with_replicated_heads() -> None:
    assert kv_bytes_per_token_per_gpu(llama_70b(), "bf16", 4) == 327_680 / 4
    assert kv_bytes_per_token_per_gpu(llama_70b(), "bf16", 16) == 2 * 80 * 1 * 128 * 2  # one head per GPU
    plan = plan_memory(llama_70b(), h100(), PrecisionConfig(), LayoutConfig(tp=16), SchedulerConfig())
    assert plan.kv_bytes_per_token == 16 * 40_960  # twice the unsharded bytes: each head lives on 2 GPUs


def test_weights_per_gpu() -> None:
    model = llama_8b()
    assert weights_bytes_per_gpu(model, "bf16", 1) == model.num_params * 2  # 16.06 GB
    big = llama_70b()
    norms = big.num_layers * 2 * big.hidden_size + big.hidden_size  # replicated on every GPU
    assert weights_bytes_per_gpu(big, "bf16", 4) == pytest.approx(
        (big.num_params - norms) * 2 / 4 + norms * 2
    )
    # fp8 halves the layers' matrices; embedding and LM head stay bf16
    emb = big.embedding_params + big.lm_head_params
    fp8 = (big.num_params - norms - emb) * 1 / 4 + emb * 2 / 4 + norms * 2
    assert weights_bytes_per_gpu(big, "fp8", 4) == pytest.approx(fp8)


def test_num_kv_blocks_by_hand() -> None:
    # Llama-3.1-8B, bf16, tp 1, H100 80 GB, utilization 0.9, 8192 batched tokens, 256 seqs, block 16
    usable = 80e9 * 0.9
    weights = 8_030_261_248 * 2
    per_token_act = (2 * 4096 + 3 * 14336) * 2  # hidden + residual + gate/up/act outputs, 2 bytes
    logits = 256 * 128_256 * (2 + 4)  # bf16 logits and their fp32 copy for 256 sequences
    activations = 8192 * per_token_act + logits
    free = usable - weights - activations - 2**30
    expected_blocks = math.floor(free / (16 * 2 * 32 * 8 * 128 * 2))
    assert expected_blocks == 25_668
    plan = plan_memory(llama_8b(), h100(), PrecisionConfig(), LayoutConfig(), SchedulerConfig())
    assert plan.activation_bytes_per_gpu == activations
    assert plan.runtime_reserve_bytes_per_gpu == RUNTIME_RESERVE_BYTES == 2**30
    assert plan.num_kv_blocks == expected_blocks
    assert plan.max_kv_tokens == expected_blocks * 16


def test_fp8_kv_doubles_the_tokens() -> None:
    bf16 = plan_memory(llama_70b(), h100(), PrecisionConfig(), LayoutConfig(tp=4), SchedulerConfig())
    fp8 = plan_memory(
        llama_70b(), h100(), PrecisionConfig(kv_cache="fp8"), LayoutConfig(tp=4), SchedulerConfig()
    )
    assert fp8.num_kv_blocks == pytest.approx(2 * bf16.num_kv_blocks, abs=1)


def _apply(suggestion: str, pattern: str) -> int:
    match = re.search(pattern, suggestion)
    assert match, suggestion
    return int(match.group(1))


def test_405b_on_one_h100_does_not_fit_and_the_advice_fits() -> None:
    scheduler = SchedulerConfig()
    with pytest.raises(DoesNotFitError) as info:
        plan_memory(llama_405b(), h100(), PrecisionConfig(), LayoutConfig(), scheduler)
    err = info.value
    assert err.available_bytes == 72e9
    assert err.required_bytes > 800e9  # 810 GB of bf16 weights
    tp = _apply(err.suggestion, r"layout\.tp = (\d+) \(")
    assert tp == 16  # tp 8 leaves 101 GB per GPU of weights
    assert (
        plan_memory(llama_405b(), h100(), PrecisionConfig(), LayoutConfig(tp=tp), scheduler).num_kv_blocks
        >= 1
    )
    fp8_tp = _apply(err.suggestion, r"'fp8' with layout\.tp = (\d+)")
    assert fp8_tp == 8
    fp8 = PrecisionConfig(weights="fp8")
    assert plan_memory(llama_405b(), h100(), fp8, LayoutConfig(tp=fp8_tp), scheduler).num_kv_blocks >= 1
    with pytest.raises(DoesNotFitError):
        plan_memory(llama_405b(), h100(), fp8, LayoutConfig(tp=fp8_tp // 2), scheduler)


def test_invalid_layout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"layout\.tp"):
        plan_memory(llama_8b(), h100(), PrecisionConfig(), LayoutConfig(tp=5), SchedulerConfig())
