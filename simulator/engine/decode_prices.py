"""The prices of k consecutive decode steps of one batch, as numpy arrays, equal to ``cost_model.step``'s.

In a decode run the batch is fixed (``n`` sequences, one token each) and only the KV tokens read grow,
by ``n`` a step: step ``j`` has the shape ``BatchShape(0, 0, 0.0, 0, n, kv0 + j n, n)``. Each step is
priced by the cost model itself (memoized per token count inside ``CostModel``), so a run's prices are
the step-by-step engine's by construction. A vectorised twin of ``CostModel.step`` once lived here; it
read the cost model's private coefficients and broke when the cost model grew MoE and pipeline terms,
so it was removed: a faster run pricing belongs in ``step_cost`` as a method of the cost model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.speculative import Pricer
from simulator.step_cost import BatchShape


class StepPrices(NamedTuple):
    """Per step of a run: time on the replica (s), FLOPs and HBM bytes of the whole replica."""

    time_s: np.ndarray
    flops: np.ndarray
    num_bytes: np.ndarray


def decode_shape(num_seqs: int, kv_tokens: int) -> BatchShape:
    """The shape of a decode-only step of ``num_seqs`` sequences reading ``kv_tokens`` KV tokens."""
    return BatchShape(0, 0, 0.0, 0, num_seqs, kv_tokens, num_seqs)


def price_decode_steps(cost_model: Pricer, num_seqs: int, kv_tokens: np.ndarray) -> StepPrices:
    """``cost_model.step`` of ``decode_shape(num_seqs, kv)`` for every ``kv`` in ``kv_tokens``."""
    costs = [cost_model.step(decode_shape(num_seqs, kv)) for kv in kv_tokens.tolist()]
    return StepPrices(
        np.array([c.time_s for c in costs], dtype=np.float64),
        np.array([c.flops for c in costs], dtype=np.float64),
        np.array([c.num_bytes for c in costs], dtype=np.float64),
    )
