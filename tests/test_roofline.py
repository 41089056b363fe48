"""The roofline op time against hand-computed numbers on the H100 SXM profile."""

from __future__ import annotations

import pytest
from _models import h100

from simulator.errors import ConfigError
from simulator.hardware.roofline import Roofline, is_compute_bound, op_time_s

# h100-sxm.yaml: bf16 989.4e12 FLOP/s x 0.75; 3.35e12 B/s x 0.85; 4 us per kernel.
FLOPS_PER_S = 989.4e12 * 0.75
BYTES_PER_S = 3.35e12 * 0.85
OVERHEAD_S = 4e-6


def test_compute_bound_op() -> None:
    flops, num_bytes = 1e12, 1e6
    assert op_time_s(h100(), flops, num_bytes, "bf16") == pytest.approx(flops / FLOPS_PER_S + OVERHEAD_S)


def test_memory_bound_op() -> None:
    flops, num_bytes = 1e6, 1e9
    assert op_time_s(h100(), flops, num_bytes, "bf16") == pytest.approx(num_bytes / BYTES_PER_S + OVERHEAD_S)


def test_fp8_doubles_the_compute_roof() -> None:
    flops = 1e13
    t_bf16 = op_time_s(h100(), flops, 0.0, "bf16") - OVERHEAD_S
    t_fp8 = op_time_s(h100(), flops, 0.0, "fp8") - OVERHEAD_S
    assert t_bf16 / t_fp8 == pytest.approx(1978.9 / 989.4)


def test_empty_op_costs_nothing_and_overhead_is_charged_once() -> None:
    assert op_time_s(h100(), 0.0, 0.0, "bf16") == 0.0
    assert op_time_s(h100(), 1.0, 0.0, "bf16") == pytest.approx(OVERHEAD_S + 1.0 / FLOPS_PER_S)


def test_non_native_dtype_is_an_error() -> None:
    with pytest.raises(ConfigError, match="native dtypes"):
        op_time_s(h100(), 1e9, 1e9, "fp4")


def test_ridge_point_and_boundness() -> None:
    roof = Roofline.of(h100(), "bf16")
    assert roof.ridge_flops_per_byte == pytest.approx(FLOPS_PER_S / BYTES_PER_S)  # ~261 FLOP/B
    ridge = roof.ridge_flops_per_byte
    assert is_compute_bound(h100(), 2 * ridge * 1e9, 1e9, "bf16")
    assert not is_compute_bound(h100(), 0.5 * ridge * 1e9, 1e9, "bf16")
