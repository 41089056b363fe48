"""The what-if operator API: hand-checked times and argument validation."""

from __future__ import annotations

import pytest
from _models import h100

from simulator import ops
from simulator.errors import ConfigError, UnknownNameError
from simulator.parallel import comm

FLOPS_PER_S = 989.4e12 * 0.75
BYTES_PER_S = 3.35e12 * 0.85
OVERHEAD_S = 4e-6


def test_gemm_by_name_and_by_hand() -> None:
    m, n, k = 4096, 4096, 4096
    expected = 2 * m * n * k / FLOPS_PER_S + OVERHEAD_S  # compute-bound: 137 GFLOP
    assert ops.gemm_time_s("h100-sxm", m, n, k, "bf16") == pytest.approx(expected)
    assert ops.gemm_time_s(h100(), m, n, k, "bf16") == ops.gemm_time_s("h100-sxm", m, n, k, "bf16")
    small = ops.gemm_time_s("h100-sxm", 1, n, k, "bf16")  # memory-bound: the weights
    assert small == pytest.approx((n * k * 2 + (k + n) * 2) / BYTES_PER_S + OVERHEAD_S)


def test_gemm_dtypes() -> None:
    m, n, k = 8192, 8192, 8192
    assert ops.gemm_time_s("h100-sxm", m, n, k, "fp8") < 0.6 * ops.gemm_time_s("h100-sxm", m, n, k, "bf16")
    # int4 is not native on H100: weight-only, computed at the bf16 peak, a quarter of the bytes
    assert ops.gemm_time_s("h100-sxm", m, n, k, "int4") == pytest.approx(
        ops.gemm_time_s("h100-sxm", m, n, k, "bf16")
    )
    int4_s = ops.gemm_time_s("h100-sxm", 1, n, k, "int4") - OVERHEAD_S
    bf16_s = ops.gemm_time_s("h100-sxm", 1, n, k, "bf16") - OVERHEAD_S
    assert int4_s / bf16_s == pytest.approx(0.25, rel=0.01)


def test_attention_prefill_by_hand() -> None:
    batch, s, h, g, d = 2, 1024, 32, 8, 128
    flops = 4 * d * h * batch * s * (s + 1) / 2
    bytes_ = 2 * batch * s * h * d * 2 + 2 * batch * s * g * d * 2
    expected = max(flops / FLOPS_PER_S, bytes_ / BYTES_PER_S) + OVERHEAD_S
    assert ops.attention_prefill_time_s("h100-sxm", batch, s, h, g, d) == pytest.approx(expected)


def test_attention_decode_by_hand_and_memory_bound() -> None:
    batch, kv_len, h, g, d = 64, 4096, 32, 8, 128
    bytes_ = 2 * batch * kv_len * g * d * 1 + 2 * batch * h * d * 2
    expected = bytes_ / BYTES_PER_S + OVERHEAD_S
    assert ops.attention_decode_time_s("h100-sxm", batch, kv_len, h, g, d, "fp8") == pytest.approx(expected)


def test_allreduce_wraps_comm() -> None:
    assert ops.allreduce_time_s("h100-sxm", 16e6, 8) == comm.allreduce_time_s(h100(), 16e6, 8)
    assert ops.allreduce_time_s("h100-sxm", 0, 8) == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ops.gemm_time_s("h100-sxm", 0, 1, 1), "m"),
        (lambda: ops.gemm_time_s("h100-sxm", 1, 1.5, 1), "n"),
        (lambda: ops.gemm_time_s("h100-sxm", 1, 1, True), "k"),
        (lambda: ops.gemm_time_s("h100-sxm", 1, 1, 1, "fp12"), "dtype"),
        (lambda: ops.attention_prefill_time_s("h100-sxm", 1, 16, 32, 5, 128), "num_kv_heads"),
        (lambda: ops.attention_prefill_time_s("h100-sxm", 1, -16, 32, 8, 128), "seq_len"),
        (lambda: ops.attention_decode_time_s("h100-sxm", 1, 16, 32, 8, 128, "int4"), "kv_dtype"),
        (lambda: ops.allreduce_time_s("h100-sxm", -1.0, 8), "num_bytes"),
        (lambda: ops.allreduce_time_s("h100-sxm", 1e6, 0), "num_gpus"),
    ],
)
def test_bad_arguments_name_the_field(call: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.field == field


def test_unknown_hardware_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="h100-sxm"):
        ops.gemm_time_s("h999", 1, 1, 1)
