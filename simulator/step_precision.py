"""Which precision a step's kernels compute in on a given GPU, and what a fallback costs (L2).

GEMMs compute in the weights' dtype when the GPU has it natively (its profile has a peak for it);
otherwise they run weight-only: bytes follow the weights, FLOPs run at the bf16 peak derated by
``WEIGHT_ONLY_COMPUTE_FRAC``. Attention, the embedding and the LM head stay bf16.
"""

from __future__ import annotations

from simulator.hardware.profile import HardwareProfile
from simulator.hardware.roofline import Roofline
from simulator.precision import bytes_per_element

EMBEDDING_DTYPE = "bf16"
"""Storage format of the embedding table and the LM head, whatever ``precision.weights`` is."""

ATTENTION_COMPUTE_DTYPE = "bf16"

WEIGHT_ONLY_COMPUTE_FRAC = 0.85
"""Tensor-core throughput left to a weight-only GEMM once it dequantizes weights in registers. ASSUMED:
fused kernels (Marlin, Frantar et al. 2024, arXiv:2408.11743) hide dequantization while memory-bound and
reach near-ideal speed-ups only up to batch 16-32; when compute-bound the conversion competes with the
MMA issue slots. 0.85 is an order-of-magnitude choice, not a fit; calibrate per kernel if it matters."""


def compute_dtype_for(hardware: HardwareProfile, weights_dtype: str) -> str:
    """The GEMMs' compute dtype: the weights' dtype when ``hardware`` has it natively, else bf16."""
    return weights_dtype if hardware.is_native(weights_dtype) else "bf16"


def precision_fallback_note(hardware: HardwareProfile, weights_dtype: str) -> str | None:
    """Why GEMMs do not compute in ``weights_dtype`` on ``hardware`` (None when they do)."""
    if hardware.is_native(weights_dtype) or bytes_per_element(weights_dtype) >= 2.0:
        return None
    native = ", ".join(sorted(hardware.peak_flops_per_s))
    return (
        f"{hardware.name} has no {weights_dtype} tensor cores (native: {native}): "
        f"{weights_dtype} weights run weight-only, bf16 compute at {WEIGHT_ONLY_COMPUTE_FRAC:.0%} of its peak"
    )


def gemm_roofline(hardware: HardwareProfile, weights_dtype: str) -> Roofline:
    """The roofline GEMMs of ``weights_dtype`` weights run on: native, or weight-only on bf16 compute."""
    compute_dtype = compute_dtype_for(hardware, weights_dtype)
    roof = Roofline.of(hardware, compute_dtype)
    if compute_dtype != weights_dtype and bytes_per_element(weights_dtype) < 2.0:
        roof = Roofline(roof.flops_per_s * WEIGHT_ONLY_COMPUTE_FRAC, roof.bytes_per_s, roof.kernel_overhead_s)
    return roof
