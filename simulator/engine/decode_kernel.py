"""The compiled planner of decode runs (L4): imported on first use, so that numba loads only for
simulations long enough to gain from it (``simulator.engine.decode_run.CompiledPricing``).

``plan_kernel`` prices a piece of a decode run as ``CostModel.step`` would, step for step, with
``attention_terms`` compiled (the one formula ``CostModel._forward`` also calls), and writes the
steps' end times, inter-token gaps and step-log rows into the planner's buffers.
"""

from __future__ import annotations

import numba
import numpy as np

from simulator.engine.records import STEP_COLUMNS
from simulator.spec_pricing import attention_terms

SOURCES_DIGEST = "4f12a605f8343e56523f1d3870aed69c376da37101be61ce8373e6eabd556cc7"
"""sha256 of spec_pricing.py, whose code numba compiles into this module's cached kernel
(simulator.engine.compiled.KERNEL_SOURCES; tests/test_compiled_engine.py checks it)."""

attention_jit = numba.njit(cache=True)(attention_terms)
"""``attention_terms`` compiled: the same arithmetic (IEEE, no fast-math)."""

_ROW_COLUMNS = (
    "replica",
    "start_s",
    "duration_s",
    "num_seqs",
    "num_prefill_tokens",
    "num_decode_tokens",
    "num_preempted",
    "kv_used_blocks",
    "flops",
    "num_bytes",
)
# plan_kernel writes rows with these indices as literals, not as globals: numba's on-disk cache would
# keep stale global constants if records.py reordered its columns. This check catches that instead.
assert STEP_COLUMNS == _ROW_COLUMNS, "decode runs write step rows in this column order (plan_kernel)"


@numba.njit(cache=True)
def plan_kernel(
    end_s,
    gaps_s,
    rows,
    terms,
    num_seqs,
    kv_tokens,
    hist,
    step,
    free_blocks,
    max_steps,
    start_s,
    overhead_s,
    replica,
    used_blocks,
):
    """Up to ``max_steps`` decode steps priced as ``CostModel.step`` would, from ``start_s``: the first
    reads ``kv_tokens`` KV tokens, each adds ``num_seqs``; stops before a step (after the first) needing
    more new blocks than are free (step ``step + j`` needs ``hist[(1 - step - j) % block_size]``, as
    ``DecodeSet.num_new_blocks_at``). Writes end times, the gaps between them and step-log rows into
    ``end_s``, ``gaps_s`` and ``rows`` (at least ``max_steps`` long); returns the number of steps."""
    fc, fm, ff, fb, fpp, qo, kvb, afs, bs, ovh, num_layers, tp = terms
    block_size = hist.size
    t = start_s
    count = 0
    for j in range(max_steps):
        if j:
            need = hist[((1 - step - j) % block_size + block_size) % block_size]
            if need > free_blocks:
                break
            free_blocks -= need
            used_blocks += need
        kv = kv_tokens + j * num_seqs
        ta, fa, ba = attention_jit(kv, num_seqs, kv, 1.0, fpp, qo, kvb, afs, bs, ovh, num_layers)
        d = ((fc + ta) + fm) + overhead_s  # CostModel.step's time_s, plus the scheduler's overhead
        rows[j, 0] = replica
        rows[j, 1] = t
        rows[j, 2] = d
        rows[j, 3] = num_seqs
        rows[j, 4] = 0
        rows[j, 5] = num_seqs
        rows[j, 6] = 0
        rows[j, 7] = used_blocks
        rows[j, 8] = (ff + fa) * tp
        rows[j, 9] = (fb + ba) * tp
        t_next = t + d
        gaps_s[j] = t_next - t  # as DecodeSet.advance computes a gap: this end - the previous end
        t = t_next
        end_s[j] = t
        count += 1
    return count


def warm_up() -> None:
    """Load (or compile) the kernel now: a tiny call, for benchmarks that time the simulation alone."""
    plan_kernel(
        np.empty(2),
        np.empty(2),
        np.empty((2, len(STEP_COLUMNS))),
        np.ones(12),
        1,
        1,
        np.zeros(16, dtype=np.int64),
        0,
        0,
        2,
        0.0,
        0.0,
        0,
        0,
    )
