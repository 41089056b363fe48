"""The roofline against Vidur's H100 measurements (tests/data/vidur, MIT licence): GEMMs and all-reduce.

Run with ``-s`` to print the tables. Figures at the time of writing (h100-sxm.yaml: compute 0.75,
memory 0.85, comm 0.80, 4 us per kernel): GEMM median absolute percentage error 8% over all 320 rows,
10% at >= 64 tokens (the roofline is optimistic for mid-sized, narrow TP-8 GEMMs that cannot fill the
GPU), 5% at >= 2048 tokens and TP 1-2; 8-GPU all-reduce 14% over 2 KiB..64 MiB, 7% at >= 4 MiB
(4 GPUs: 8% at >= 4 MiB; 2 GPUs: 30%).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from _models import h100

from simulator.ops import allreduce_time_s, gemm_time_s

DATA = Path(__file__).parent / "data" / "vidur"


class Row(NamedTuple):
    label: str
    measured_s: float
    predicted_s: float

    @property
    def error_frac(self) -> float:
        return (self.predicted_s - self.measured_s) / self.measured_s


def _read(name: str) -> Iterator[dict[str, str]]:
    with (DATA / name).open(newline="") as f:
        yield from csv.DictReader(f)


def _gemm_shape(row: dict[str, str]) -> tuple[int, int]:
    """(n, k) of Vidur's op for one TP shard (Vidur's mlp.csv keys, Megatron sharding)."""
    tp = int(row["num_tensor_parallel_workers"])
    hidden, heads, kv = int(row["n_embd"]), int(row["n_head"]), int(row["n_kv_head"])
    inter, head_dim = int(row["n_expanded_embd"]), int(row["n_embd"]) // int(row["n_head"])
    up = 2 * inter if row["use_gated_mlp"] == "True" else inter
    return {
        "attn_pre_proj": ((heads // tp + 2 * max(1, kv // tp)) * head_dim, hidden),
        "attn_post_proj": (hidden, heads // tp * head_dim),
        "mlp_up_proj": (up // tp, hidden),
        "mlp_down_proj": (hidden, inter // tp),
    }[row["op"]]


def _gemm_rows() -> list[tuple[int, Row]]:
    hw, out = h100(), []
    for row in _read("gemm_h100_fp16.csv"):
        m = int(row["num_tokens"])
        n, k = _gemm_shape(row)
        tp = row["num_tensor_parallel_workers"]
        label = f"{row['model'].split('/')[1]:<15} {row['op']:<15} tp{tp} T={m:<5}"
        out.append((m, Row(label, float(row["median_ms"]) * 1e-3, gemm_time_s(hw, m, n, k, "fp16"))))
    return out


def _mdape(rows: list[Row]) -> float:
    return statistics.median(abs(r.error_frac) for r in rows)


def _print(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n{'case':<48} {'measured us':>12} {'model us':>10} {'error':>7}")
    for r in rows:
        print(f"{r.label:<48} {r.measured_s * 1e6:12.1f} {r.predicted_s * 1e6:10.1f} {r.error_frac:+7.0%}")


def test_gemms_vs_vidur() -> None:
    rows = _gemm_rows()
    assert len(rows) == 320
    every = [r for _, r in rows]
    large = [r for m, r in rows if m >= 64]
    _print("GEMMs, H100 fp16 (Vidur mlp.csv medians)", every[::4])
    errors = sorted(abs(r.error_frac) for r in every)
    p90 = errors[int(0.9 * len(errors))]
    print(f"MdAPE all {_mdape(every):.1%}, >= 64 tokens {_mdape(large):.1%}, p90 {p90:.1%}")
    assert _mdape(every) < 0.15
    assert _mdape(large) < 0.15
    assert p90 < 0.35


def test_big_gemms_sit_on_the_compute_roof() -> None:
    """At >= 2048 tokens and TP 1-2 (the rows the 0.75 compute efficiency comes from) the model is within
    10% in the median and 20% on every row."""
    rows = [r for m, r in _gemm_rows() if m >= 2048 and (" tp1 " in r.label or " tp2 " in r.label)]
    assert len(rows) == 32
    print(f"\nbig GEMMs: MdAPE {_mdape(rows):.1%}, worst {max(abs(r.error_frac) for r in rows):.1%}")
    assert _mdape(rows) < 0.10
    assert max(abs(r.error_frac) for r in rows) < 0.20


def _allreduce_rows(num_gpus: int) -> list[tuple[int, Row]]:
    hw = h100()
    return [
        (
            int(row["size_bytes"]),
            Row(
                f"{num_gpus} GPUs {int(row['size_bytes']):>10} B",
                float(row["median_ms"]) * 1e-3,
                allreduce_time_s(hw, float(row["size_bytes"]), num_gpus),
            ),
        )
        for row in _read("all_reduce_h100_dgx.csv")
        if int(row["num_workers"]) == num_gpus
    ]


def test_allreduce_8_gpus_vs_vidur() -> None:
    rows = [r for _, r in _allreduce_rows(8)]
    assert len(rows) == 18
    _print("All-reduce over 8 H100 (Vidur h100_dgx medians)", rows)
    print(f"MdAPE {_mdape(rows):.1%}")
    assert _mdape(rows) < 0.20


@pytest.mark.parametrize(("num_gpus", "tolerance"), [(8, 0.10), (4, 0.15), (2, 0.35)])
def test_allreduce_bandwidth_regime_vs_vidur(num_gpus: int, tolerance: float) -> None:
    """Buffers of >= 4 MiB, where the ring's bandwidth term dominates. 2 GPUs run ~25% slower than the
    model: NCCL reaches ~320 GB/s of bus bandwidth with 2 ranks on NVSwitch, ~410 GB/s with 8 (one
    efficiency factor for all sizes of group is a known limit). Below ~1 MiB Vidur's times sit on a
    ~35-40 us floor whatever the GPU count (an eager torch.distributed call); the ring's 2 (n-1) x 3 us
    latency matches it at 8 GPUs only. Those rows are printed, not asserted."""
    pairs = _allreduce_rows(num_gpus)
    _print(f"All-reduce over {num_gpus} H100 (Vidur h100_dgx medians)", [r for _, r in pairs])
    big = [r for size, r in pairs if size >= 4 * 2**20]
    assert len(big) == 6
    print(f"MdAPE >= 4 MiB: {_mdape(big):.1%}; all sizes: {_mdape([r for _, r in pairs]):.1%}")
    assert _mdape(big) < tolerance
