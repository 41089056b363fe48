"""The prices of k consecutive decode steps of one batch, as numpy arrays, equal to ``CostModel.step``'s.

In a decode run the batch is fixed (``n`` sequences, one token each) and only the KV tokens read grow,
by ``n`` a step: step ``j`` has the shape ``BatchShape(0, 0, 0.0, 0, n, kv0 + j n, n)``. Every term of
``CostModel.step`` for that shape is a constant but the decode-attention one, so the k steps are priced
with the same float operations, in the same order, on arrays instead of scalars (IEEE-754 double
arithmetic is the same element by element, so the results are equal bit for bit, not just close).

The twin reads the cost model's coefficients. It is checked against ``CostModel.step`` at both ends of
every run (a change to the cost model that the twin does not follow falls back to pricing step by
step, never to different numbers), and ``tests/test_fast_mode.py`` compares it on many shapes.
A calibrated cost model (a table lookup per op) is always priced step by step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.speculative import Pricer
from simulator.step_cost import BatchShape, CostModel


class StepPrices(NamedTuple):
    """Per step of a run: time on the replica (s), FLOPs and HBM bytes of the whole replica."""

    time_s: np.ndarray
    flops: np.ndarray
    num_bytes: np.ndarray


def decode_shape(num_seqs: int, kv_tokens: int) -> BatchShape:
    """The shape of a decode-only step of ``num_seqs`` sequences reading ``kv_tokens`` KV tokens."""
    return BatchShape(0, 0, 0.0, 0, num_seqs, kv_tokens, num_seqs)


def price_decode_steps(cost_model: Pricer, num_seqs: int, kv_tokens: np.ndarray) -> StepPrices:
    """``cost_model.step`` of ``decode_shape(num_seqs, kv)`` for every ``kv`` in ``kv_tokens``, exactly."""
    if isinstance(cost_model, CostModel) and not cost_model.calibrated:
        try:
            prices = _price_at_once(cost_model, num_seqs, kv_tokens)
        except AttributeError:  # the cost model's coefficients were renamed
            prices = None
        if prices is not None and _agrees(cost_model, num_seqs, kv_tokens, prices):
            return prices
    return _price_one_by_one(cost_model, num_seqs, kv_tokens)


def _agrees(cost_model: Pricer, num_seqs: int, kv_tokens: np.ndarray, prices: StepPrices) -> bool:
    """Whether ``prices`` are ``CostModel.step``'s at the first and the last step."""
    for i in (0, len(kv_tokens) - 1):
        cost = cost_model.step(decode_shape(num_seqs, int(kv_tokens[i])))
        if (cost.time_s, cost.flops, cost.num_bytes) != (
            float(prices.time_s[i]),
            float(prices.flops[i]),
            float(prices.num_bytes[i]),
        ):
            return False
    return True


def _price_one_by_one(cost_model: Pricer, num_seqs: int, kv_tokens: np.ndarray) -> StepPrices:
    costs = [cost_model.step(decode_shape(num_seqs, kv)) for kv in kv_tokens.tolist()]
    return StepPrices(
        np.array([c.time_s for c in costs], dtype=np.float64),
        np.array([c.flops for c in costs], dtype=np.float64),
        np.array([c.num_bytes for c in costs], dtype=np.float64),
    )


def _price_at_once(cm: CostModel, n: int, kv: np.ndarray) -> StepPrices:
    """``CostModel.step`` (uncalibrated) restricted to decode shapes; the operations in its order."""
    ovh = cm.kernel_overhead_s
    layer0_s = cm._token_ops_cache.get(n)
    if layer0_s is None:
        layer0_s = cm._token_ops_time_s(n)
    flops0 = cm._layer_flops_per_token * n
    nbytes0 = cm._layer_bytes_fixed + cm._layer_bytes_per_token * n
    # decode attention: the one term that varies along the run
    f = cm._attn_flops_per_pair * kv
    b = cm._attn_q_o_bytes_per_token * n + cm._attn_kv_bytes_per_token * kv
    c, m = f * cm._attn_flops_s, b * cm._bytes_s
    layer_s = layer0_s + (np.where(c > m, c, m) + ovh)
    flops = flops0 + f
    nbytes = nbytes0 + b
    compute_s = layer_s * cm.num_layers + 2.0 * ovh
    flops = flops * cm.num_layers
    nbytes = nbytes * cm.num_layers
    step_bytes = cm._step_bytes_per_token * n
    compute_s = compute_s + step_bytes * cm._bytes_s
    flops = flops + cm._step_flops_per_token * n
    nbytes = nbytes + step_bytes
    comm_s = 0.0
    a, b0, b1 = cm._lm_head  # every decode token produces logits
    lm_flops, lm_bytes = a * n, b0 + b1 * n
    lm_c, lm_m = lm_flops * cm._gemm_flops_s, lm_bytes * cm._bytes_s
    compute_s = compute_s + ((lm_c if lm_c > lm_m else lm_m) + ovh)
    flops = flops + lm_flops
    nbytes = nbytes + lm_bytes
    if cm.tp > 1:
        comm_s += cm._gather_fixed_s + cm._gather_s_per_logit * n
        comm_s += cm._allreduce_fixed_s + cm._allreduce_s_per_token * n
    return StepPrices(compute_s + comm_s, flops * cm.tp, nbytes * cm.tp)
