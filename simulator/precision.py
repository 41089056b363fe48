"""Numeric formats: bytes per element and which formats a kernel can compute in.

Weights may be stored in a narrower format than the one the tensor cores compute in (weight-only
quantization); the hardware profile says which formats are native (``peak_flops_per_s`` has a key).
"""

from __future__ import annotations

from typing import Literal

DType = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
KVDType = Literal["bf16", "fp16", "fp8"]

BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}


def bytes_per_element(dtype: str) -> float:
    """Storage size of one element of ``dtype`` in bytes (int4/fp4 pack two per byte)."""
    return BYTES_PER_ELEMENT[dtype]
