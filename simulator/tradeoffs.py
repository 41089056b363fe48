"""Summary figures for the layout and precision trade-offs of a run (layer L2): pipeline bubble, MoE
expert imbalance, the precision actually used, and the user's own quality table.

The quality (fidelity) table is whatever the scenario's ``precision.quality`` holds: measured accuracy
deltas or scores the user supplies with their source. trilemma ships no quality numbers and invents
none; without a table the summary says "not supplied".
"""

from __future__ import annotations

from typing import Any

from simulator.config import PrecisionConfig
from simulator.step_cost import CostModel

NO_QUALITY = "not supplied (trilemma ships no quality numbers; add precision.quality to the scenario)"


def quality_text(precision: PrecisionConfig) -> str:
    """The quality table as one line: ``mmlu accuracy -0.40 (source); ...`` or ``NO_QUALITY``."""
    if not precision.quality:
        return NO_QUALITY
    return "; ".join(f"{q.task} {q.metric} {q.value:+.4g} ({q.source})" for q in precision.quality)


def tradeoff_summary(precision: PrecisionConfig, cost: CostModel, mean_batch_size: float) -> dict[str, Any]:
    """Extra summary keys: precision, quality, pipeline bubble and MoE imbalance at the mean batch."""
    batch = max(1, round(mean_batch_size))
    return {
        "weights_dtype": precision.weights,
        "kv_cache_dtype": precision.kv_cache,
        "compute_dtype": cost.compute_dtype,
        "precision_note": cost.precision_note or "",
        "quality": quality_text(precision),
        "pipeline_bubble_frac": cost.pipeline_bubble_frac(batch),
        "moe_imbalance_frac": cost.moe_imbalance_frac(batch),
    }
