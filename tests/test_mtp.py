"""The MTP draft head (``scheduler.speculative.draft: mtp``): one layer of the target sharing its
embeddings and LM head; its weights, KV and cost per proposed token; lower ITL at batch 1."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import Scenario, load_model, resolve, simulate
from simulator.memory import kv_bytes_per_token_per_gpu
from simulator.speculative import SpeculativeCostModel, mtp_draft_spec, mtp_weights_bytes_per_gpu
from simulator.step_cost import BatchShape

MTP = {"draft": "mtp", "num_speculative_tokens": 1, "acceptance_rate": 0.85}


def _scenario(batch: int, speculative: dict[str, Any] | None) -> Scenario:
    return Scenario.from_dict(
        {
            "model": "llama-3.1-70b",
            "precision": {"weights": "fp8"},
            "layout": {"tp": 4},
            "scheduler": {"speculative": speculative, "max_num_seqs": 512},
            "workload": {
                "arrival": "concurrency",
                "concurrency": batch,
                "num_requests": 3 * batch,
                "input_tokens": 512,
                "output_tokens": 256,
            },
        }
    )


def test_the_mtp_head_is_one_target_layer_plus_the_joining_projection() -> None:
    target = load_model("llama-3.1-70b")
    mtp = mtp_draft_spec(target)
    assert mtp.num_layers == 1 and mtp.hidden_size == target.hidden_size
    h = target.hidden_size
    # the projection M (h x 2h) rides in the MLP: 3 matrices of h x ceil(2h / 3)
    assert mtp.intermediate_size == target.intermediate_size + -(-2 * h // 3)
    # bf16, one GPU: the layer (attention, MLP, 2 norms) and M; the embedding and LM head are shared
    own = mtp_weights_bytes_per_gpu(mtp, "bf16", 1)
    assert own == pytest.approx(2 * (target.params_per_layer + 2 * h * h + h), rel=1e-3)
    deepseek = mtp_draft_spec(load_model("deepseek-v3"))
    assert deepseek.num_layers == 1 and deepseek.num_moe_layers == 1  # a MoE layer, as in DeepSeek-V3


def test_the_mtp_head_takes_little_memory_and_prices_each_proposed_token() -> None:
    plain, mtp = resolve(_scenario(1, None)), resolve(_scenario(1, MTP))
    target = load_model("llama-3.1-70b")
    assert isinstance(mtp.cost, SpeculativeCostModel)
    extra = mtp.memory.weights_bytes_per_gpu - plain.memory.weights_bytes_per_gpu
    assert extra == pytest.approx(mtp_weights_bytes_per_gpu(mtp_draft_spec(target), "fp8", 4))
    assert 0.2e9 < extra < 0.3e9  # ~0.9B parameters of fp8 over 4 GPUs
    # its own KV for every token: one layer's worth beside the target's 80
    one_layer = kv_bytes_per_token_per_gpu(target, "bf16", 4) / target.num_layers
    assert mtp.memory.kv_bytes_per_token_per_gpu == pytest.approx(
        plain.memory.kv_bytes_per_token_per_gpu + one_layer
    )
    assert mtp.memory.num_kv_blocks < plain.memory.num_kv_blocks
    # one proposed token costs a small fraction of a target decode step, but not nothing (the LM head)
    decode = BatchShape(0, 0, 0.0, 0, 1, 512, 1)
    ratio = mtp.cost.draft.step(decode).time_s / mtp.cost.target.step(decode).time_s
    assert 0.01 < ratio < 0.1


def test_mtp_lowers_itl_at_batch_1() -> None:
    plain = simulate(_scenario(1, None)).summary()
    mtp = simulate(_scenario(1, MTP)).summary()
    # measured: 13.2 ms -> 7.7 ms (E = 1.85 tokens per verify step of 2 tokens, the head ~4% of a step)
    assert mtp["itl_p50_s"] < 0.65 * plain["itl_p50_s"]
    assert mtp["num_completed"] == plain["num_completed"] == 3
