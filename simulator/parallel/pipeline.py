"""Pipeline parallelism with batches kept in flight: how long a round takes and how idle the stages are.

Units: seconds, fractions. A replica of ``pp`` stages serves its running sequences as ``m`` micro-batches
(vLLM's "virtual engines": ``pipeline_parallel_size`` schedulers, each with its own batch, vllm/engine/
llm_engine.py; TensorRT-LLM's in-flight batching likewise keeps several micro-batches in the pipeline).
In steady state the micro-batches follow one another through the stages, so a stage is busy as long as
one of them is waiting for it and the pipeline never drains between steps (unlike GPipe's per-batch
fill and drain, Huang et al. 2019, arXiv:1811.06965, bubble (pp - 1) / (m + pp - 1))::

    stage slot = forward(micro-batch) / pp + p2p(micro-batch activations)
    round      = max(m, pp) x stage slot          (every sequence advances one token per round)

    m >= pp: the stages are always busy; a round is m slots and no bubble is left
    m <  pp: a micro-batch comes back to stage 0 after pp slots, so the round still takes pp slots and
             each stage idles (pp - m) of them

    pp = 4, m = 4 (steady state)            pp = 4, m = 1 (one sequence)
    stage0 | a b c d | a b c d |            stage0 | a . . . | a . . . |
    stage1 | d a b c | d a b c |            stage1 | . a . . | . a . . |
    stage2 | c d a b | c d a b |            stage2 | . . a . | . . a . |
    stage3 | b c d a | b c d a |            stage3 | . . . a | . . . a |

The cost model uses m = min(pp, sequences): more micro-batches than stages only shrink each one, and a
round of m >= pp slots prices the same work. One engine step is one round.
"""

from __future__ import annotations


def num_micro_batches(pp: int, num_seqs: int) -> int:
    """m = min(pp, sequences) (at least 1): one micro-batch per stage when there are enough sequences."""
    return max(1, min(pp, num_seqs))


def round_slots(pp: int, m: int) -> int:
    """Stage slots a round takes: max(m, pp)."""
    return max(m, pp)


def bubble_frac(pp: int, m: int, stage_s: float = 1.0, p2p_s: float = 0.0) -> float:
    """Fraction of a round a stage does not compute: the (pp - m) / pp idle slots when m < pp, plus the
    share of each busy slot spent sending activations, p2p / stage: 1 - m (stage - p2p) / (max(m, pp) stage).
    0 without pipeline parallelism."""
    if pp <= 1 or stage_s <= 0.0:
        return 0.0
    busy = min(m, pp) * (stage_s - p2p_s)
    return 1.0 - busy / (round_slots(pp, m) * stage_s)
