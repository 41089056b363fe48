"""What the engine asks the cost model about a step, and what it gets back (L2): plain tuples.

``simulator.step_cost`` re-exports both; ``CostModel.step(BatchShape) -> StepCost``.
"""

from __future__ import annotations

from typing import NamedTuple


class BatchShape(NamedTuple):
    """Aggregated token counts of one step (all the cost model needs).

    A NamedTuple rather than a frozen dataclass: the engine builds one per simulated step, and a
    tuple is built ~5x faster.
    """

    num_prefill_tokens: int = 0  # prompt tokens computed this step, all chunks together
    num_prefill_seqs: int = 0  # sequences with a prefill chunk in this step
    prefill_attn_pairs: float = 0.0  # sum over chunks of c*p + c*(c+1)/2 (query-key pairs, causal)
    prefill_kv_tokens: int = 0  # sum over chunks of p + c (KV tokens each chunk reads)
    num_decode_tokens: int = 0  # decoding sequences (one new token each)
    decode_kv_tokens: int = 0  # sum over decoding sequences of their KV length
    num_logit_tokens: int = 0  # tokens that produce logits (decodes + prefills finishing their prompt)


class StepCost(NamedTuple):
    """What one step costs on a replica (a NamedTuple, built once per simulated step)."""

    time_s: float  # step wall time on the replica: ops + overheads + communication (no scheduler CPU time)
    compute_s: float  # the operator part
    comm_s: float  # TP all-reduces, EP all-to-alls, PP sends (not overlapped with compute)
    flops: float  # FLOPs of the step, whole replica (all GPUs)
    num_bytes: float  # HBM bytes moved, whole replica


ZERO_COST = StepCost(0.0, 0.0, 0.0, 0.0, 0.0)
