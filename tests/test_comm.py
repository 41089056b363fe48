"""Collective times against the ring formulas written out, and layout validation (simulator.parallel)."""

from __future__ import annotations

import pytest
from _models import h100, h100_variant, llama_8b, llama_70b

from simulator.config import LayoutConfig
from simulator.errors import ConfigError
from simulator.model.spec import ModelSpec
from simulator.parallel.comm import allgather_time_s, allreduce_time_s, alltoall_time_s, p2p_time_s
from simulator.parallel.layout import kv_heads_per_gpu, valid_tp_values, validate_layout

BW = 450e9 * 0.80  # h100-sxm: NVSwitch 450 GB/s per direction x comm efficiency 0.80
LAT = 3e-6


def test_allreduce_16mb_over_8_h100_by_hand() -> None:
    n, num_bytes = 8, 16e6
    expected = 2 * (n - 1) / n * num_bytes / BW + 2 * (n - 1) * LAT  # 77.8 us + 42 us
    assert expected == pytest.approx(119.78e-6, rel=1e-4)
    assert allreduce_time_s(h100(), num_bytes, n) == pytest.approx(expected)
    # Vidur's measured 8xH100 NCCL all-reduce of 16 MiB (16,777,216 bytes): 0.115 ms median
    assert allreduce_time_s(h100(), 16_777_216, n) == pytest.approx(115e-6, rel=0.10)


def test_small_allreduce_across_many_nodes_uses_the_tree() -> None:
    n, k, m = 64, 8, 8
    small, large = 64e3, 1e9
    bw_out, lat_out = 50e9 * 0.80, 10e-6
    in_node = 2 * ((k - 1) / k * small / BW + (k - 1) * LAT)
    tree = in_node + 2 * small / k / bw_out + 2 * 3 * lat_out  # log2(8 nodes) = 3 steps each way
    assert allreduce_time_s(h100(), small, n) == pytest.approx(tree)
    ring_large = 2 * ((k - 1) / k * large / BW + (k - 1) * LAT)
    ring_large += 2 * (m - 1) / m * large / k / bw_out + 2 * (m - 1) * lat_out
    assert allreduce_time_s(h100(), large, n) == pytest.approx(ring_large)


def test_alltoall_by_hand_switch_mesh_and_nodes() -> None:
    num_bytes = 8e6
    assert alltoall_time_s(h100(), num_bytes, 8) == pytest.approx(LAT + 7 / 8 * num_bytes / BW)
    mesh = h100_variant(scaleup_topology="full_mesh", scaleup_num_links=7)
    link = 450e9 / 7 * 0.80
    assert alltoall_time_s(mesh, num_bytes, 8) == pytest.approx(LAT + num_bytes / 8 / link)
    across = 10e-6 + 8 / 16 * num_bytes / (50e9 * 0.80)  # half of each GPU's tokens leave the node
    assert alltoall_time_s(h100(), num_bytes, 16) == pytest.approx(across)
    assert alltoall_time_s(h100(), num_bytes, 16) > 4 * alltoall_time_s(h100(), num_bytes, 8)
    assert alltoall_time_s(h100(), num_bytes, 1) == 0.0


def test_allreduce_trivial_cases() -> None:
    assert allreduce_time_s(h100(), 16e6, 1) == 0.0
    assert allreduce_time_s(h100(), 0.0, 8) == 0.0
    assert allreduce_time_s(h100(), 2e6, 8) < allreduce_time_s(h100(), 4e6, 8)


def test_full_mesh_ring_uses_one_link_per_hop() -> None:
    mesh = h100_variant(scaleup_topology="full_mesh", scaleup_num_links=7)
    n, num_bytes = 8, 16e6
    expected = 2 * (n - 1) / n * num_bytes / (450e9 / 7 * 0.80) + 2 * (n - 1) * LAT
    assert allreduce_time_s(mesh, num_bytes, n) == pytest.approx(expected)


def test_allreduce_across_two_nodes_is_hierarchical() -> None:
    num_bytes, k, m = 16e6, 8, 2
    bw_out, lat_out = 50e9 * 0.80, 10e-6
    in_node = 2 * ((k - 1) / k * num_bytes / BW + (k - 1) * LAT)  # reduce-scatter + all-gather
    across = 2 * (m - 1) / m * (num_bytes / k) / bw_out + 2 * (m - 1) * lat_out
    assert allreduce_time_s(h100(), num_bytes, 16) == pytest.approx(in_node + across)
    assert allreduce_time_s(h100(), num_bytes, 16) > allreduce_time_s(h100(), num_bytes, 8)


def test_allgather_is_half_an_allreduce_in_a_node() -> None:
    n, num_bytes = 4, 8e6
    assert allgather_time_s(h100(), num_bytes, n) == pytest.approx(
        (n - 1) / n * num_bytes / BW + (n - 1) * LAT
    )
    assert allgather_time_s(h100(), num_bytes, 1) == 0.0


def test_p2p() -> None:
    assert p2p_time_s(h100(), 1e9, same_node=True) == pytest.approx(LAT + 1e9 / BW)
    assert p2p_time_s(h100(), 1e9, same_node=False) == pytest.approx(10e-6 + 1e9 / (50e9 * 0.80))
    assert p2p_time_s(h100(), 0, same_node=True) == 0.0


def test_valid_tp_values() -> None:
    assert valid_tp_values(llama_70b()) == [1, 2, 4, 8, 16, 32, 64]  # 64 heads, 8 kv heads
    odd = ModelSpec(
        name="odd",
        num_layers=2,
        hidden_size=768,
        num_attention_heads=12,
        num_kv_heads=4,
        head_dim=64,
        intermediate_size=3072,
        vocab_size=1000,
        max_position_embeddings=2048,
    )
    assert valid_tp_values(odd) == [
        1,
        2,
        4,
        12,
    ]  # 3 and 6 divide 12 heads but not 4 kv heads (nor vice versa)
    assert valid_tp_values(llama_70b(), max_tp=8) == [1, 2, 4, 8]


def test_invalid_tp_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        validate_layout(llama_8b(), h100(), LayoutConfig(tp=3))
    assert info.value.field == "layout.tp"
    assert info.value.value == 3
    assert "1, 2, 4, 8, 16, 32" in str(info.value)


def test_tp_beyond_a_node_is_allowed() -> None:
    validate_layout(llama_70b(), h100(), LayoutConfig(tp=16))


def test_kv_heads_are_replicated_beyond_their_count() -> None:
    assert kv_heads_per_gpu(llama_70b(), 4) == 2
    assert kv_heads_per_gpu(llama_70b(), 8) == 1
    assert kv_heads_per_gpu(llama_70b(), 16) == 1
