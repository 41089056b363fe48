"""Speculative decoding: a draft model proposes ``k`` tokens, the target verifies them in one step (L2).

Expected tokens a sequence gains per speculative step, with per-position acceptance probabilities
``p_1..p_k`` (each the chance that draft token i is accepted given the ones before it were)::

    E = 1 + p_1 + p_1 p_2 + ... + p_1...p_k          (constant alpha: (1 - alpha^(k+1)) / (1 - alpha))

(the target always contributes one token: the correction at the first rejection, or a bonus token).

The draft is a catalog model, or ``mtp``: the target's own multi-token-prediction head, one extra
layer sharing its embeddings and LM head (``mtp_draft_spec``; its layer, projection and KV are counted,
the shared weights are not).

Pricing one speculative step of a batch: the draft runs ``k`` decode steps over the decoding sequences
(and prefills the prompts of the step, as the target does); the target verifies ``k + 1`` tokens per
decoding sequence as a (k+1)-token chunk that reads the sequence's KV once. Rejected tokens are
computed and wasted: at batch 1 the step is memory-bound and ``k + 1`` tokens cost about one, so the
time per token falls; at a large batch it is compute-bound and the verify work grows ``k + 1`` times
for ``E`` tokens, so throughput falls.

The engine keeps one token per decoding sequence per step; ``SpeculativeCostModel.step`` therefore
charges a step the prefill part in full plus 1/E of the speculative decode part. Throughput, TPOT, KV
growth and MFU are exact in expectation; ITL is the mean gap (in reality the ``E`` tokens of a verify
step arrive together, so individual gaps alternate between ~0 and the whole step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from simulator.config import SpeculativeConfig
from simulator.memory import MemoryPlan, weights_bytes_per_gpu
from simulator.model.spec import ModelSpec
from simulator.precision import bytes_per_element
from simulator.step_cost import EMBEDDING_DTYPE, BatchShape, CostModel, StepCost

MTP_DRAFT = "mtp"
"""``scheduler.speculative.draft: mtp``: the target's multi-token-prediction head (``mtp_draft_spec``)."""


def expected_tokens_per_step(spec: SpeculativeConfig) -> float:
    """E: the expected tokens a sequence gains per speculative step (>= 1, <= k + 1)."""
    probs = spec.acceptance_profile or (spec.acceptance_rate,) * spec.num_speculative_tokens
    total, run = 1.0, 1.0
    for p in probs:
        run *= p
        total += run
    return total


def _prefill_part(shape: BatchShape) -> BatchShape:
    logits = shape.num_logit_tokens - shape.num_decode_tokens
    return BatchShape(
        shape.num_prefill_tokens, shape.num_prefill_seqs, shape.prefill_attn_pairs, shape.prefill_kv_tokens,
        0, 0, logits,
    )  # fmt: skip


def _verify_shape(shape: BatchShape, k: int) -> BatchShape:
    """The target's step: prefill chunks as planned, each decoder verifying k + 1 tokens as a chunk."""
    n, kv = shape.num_decode_tokens, shape.decode_kv_tokens
    q = k + 1
    # a decoder with L tokens of KV (the newest uncomputed) checks q queries: pairs q(L-1) + q(q+1)/2
    pairs = q * (kv - n) + n * q * (q + 1) / 2
    return BatchShape(
        num_prefill_tokens=shape.num_prefill_tokens + n * q,
        num_prefill_seqs=shape.num_prefill_seqs + n,
        prefill_attn_pairs=shape.prefill_attn_pairs + pairs,
        prefill_kv_tokens=shape.prefill_kv_tokens + kv + n * k,
        num_decode_tokens=0,
        decode_kv_tokens=0,
        num_logit_tokens=shape.num_logit_tokens + n * k,
    )


def _add(a: StepCost, b: StepCost) -> StepCost:
    return StepCost(*(x + y for x, y in zip(a, b, strict=True)))


@dataclass(frozen=True)
class SpeculativeCostModel:
    """A target CostModel plus its draft: ``step(shape)`` prices 1/E of a speculative step's decodes."""

    target: CostModel
    draft: CostModel
    num_speculative_tokens: int
    expected_tokens: float

    @property
    def compute_dtype(self) -> str:
        return self.target.compute_dtype

    @property
    def calibrated(self) -> bool:
        return self.target.calibrated

    @property
    def calibration_source(self) -> str | None:
        return self.target.calibration_source

    def speculative_step(self, shape: BatchShape) -> StepCost:
        """One whole speculative step: k draft decodes (plus the draft's prefill), then the verify."""
        k, n, kv = self.num_speculative_tokens, shape.num_decode_tokens, shape.decode_kv_tokens
        cost = self.target.step(_verify_shape(shape, k))
        if shape.num_prefill_tokens:
            cost = _add(cost, self.draft.step(_prefill_part(shape)))
        for j in range(k if n else 0):
            cost = _add(cost, self.draft.step(BatchShape(0, 0, 0.0, 0, n, kv + j * n, n)))
        return cost

    def step(self, shape: BatchShape) -> StepCost:
        """What the engine charges a step that advances each decoder by one token (see module doc)."""
        if not shape.num_decode_tokens:
            return _add(self.target.step(shape), self.draft.step(shape))
        full = self.speculative_step(shape)
        base = StepCost(0.0, 0.0, 0.0, 0.0, 0.0)
        if shape.num_prefill_tokens:
            part = _prefill_part(shape)
            base = _add(self.target.step(part), self.draft.step(part))
        e = self.expected_tokens
        return StepCost(*(b + (f - b) / e for f, b in zip(full, base, strict=True)))

    def decode_run_terms(self, num_seqs: int) -> None:
        """None: a speculative replica's decode runs are priced step by step (``CostModel.step``'s twin)."""
        return None

    def decode_step_time_s(self, batch_size: int, kv_len: int) -> float:
        """Seconds per generated token of a decode-only batch (the speculative step over E)."""
        return self.step(BatchShape(0, 0, 0.0, 0, batch_size, batch_size * kv_len, batch_size)).time_s


Pricer = CostModel | SpeculativeCostModel  # what prices a replica's steps


def mtp_draft_spec(model: ModelSpec) -> ModelSpec:
    """The target's multi-token-prediction head as a one-layer model (DeepSeek-V3, arXiv:2412.19437 2.2).

    An MTP module is one transformer layer of the target's shape (MoE when the target is) that shares
    the target's embedding table and LM head; before the layer, a projection ``M`` (hidden x 2 hidden)
    joins the target's last hidden state with the embedding of the token just sampled. The spec here is
    the target with one layer whose MLP (the shared expert, for a MoE target) is widened by
    ``2 hidden / num_mlp_matrices`` so that it carries M's FLOPs and bytes; its embedding and LM head
    are priced per proposed token (the logits are computed), but their weights are not stored twice
    (``mtp_weights_bytes_per_gpu``).
    """
    extra = -(-2 * model.hidden_size // model.num_mlp_matrices)
    update: dict[str, object] = {
        "name": f"{model.name}-mtp",
        "display_name": f"{model.display_name or model.name} MTP head",
        "num_layers": 1,
        "published_params": None,
        "published_active_params": None,
    }
    if model.is_moe:
        update |= {
            "num_dense_layers": 0,
            "moe_layer_step": 1,
            "shared_expert_intermediate_size": model.shared_expert_intermediate_size + extra,
        }
    else:
        update["intermediate_size"] = model.intermediate_size + extra
    return model.model_copy(update=update)


def mtp_weights_bytes_per_gpu(mtp: ModelSpec, weights_dtype: str, tp: int) -> float:
    """The MTP head's own weights on one GPU: its layer and projection, not the shared embedding and LM
    head (counted on every GPU: with pipeline stages it would sit with the LM head, on the last)."""
    emb_bytes = bytes_per_element(EMBEDDING_DTYPE)
    shared = (mtp.embedding_params + mtp.lm_head_params) / tp * emb_bytes
    return weights_bytes_per_gpu(mtp, weights_dtype, tp, 1) - shared


def with_draft(
    plan: MemoryPlan, draft_weights_bytes_per_gpu: float, draft_kv_bytes_per_token_per_gpu: float
) -> MemoryPlan:
    """The memory plan with the draft's weights on every GPU and its KV beside the target's, per block.

    The draft keeps its own KV for every token the target holds, so a block costs both models' bytes.
    """
    free = (
        plan.usable_bytes_per_gpu
        - plan.weights_bytes_per_gpu
        - plan.activation_bytes_per_gpu
        - plan.runtime_reserve_bytes_per_gpu
        - draft_weights_bytes_per_gpu
    )
    per_block = plan.block_size * (plan.kv_bytes_per_token_per_gpu + draft_kv_bytes_per_token_per_gpu)
    return replace(
        plan,
        weights_bytes_per_gpu=plan.weights_bytes_per_gpu + draft_weights_bytes_per_gpu,
        kv_bytes_per_token_per_gpu=plan.kv_bytes_per_token_per_gpu + draft_kv_bytes_per_token_per_gpu,
        kv_bytes_per_token=plan.kv_bytes_per_token
        * (1 + draft_kv_bytes_per_token_per_gpu / plan.kv_bytes_per_token_per_gpu),
        num_kv_blocks=max(0, math.floor(free / per_block)) * plan.num_kv_pools,
    )
