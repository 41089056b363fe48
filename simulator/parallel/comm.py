"""Time of the collectives a tensor-parallel replica runs: all-reduce, all-gather, point-to-point.

Units: bytes, seconds. Ring algorithms (Thakur, Rabenseifner and Gropp, "Optimization of collective
communication operations in MPICH", IJHPCA 2005; NCCL's bus-bandwidth convention in
github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md): a ring all-reduce of B bytes over n GPUs
sends 2 (n - 1) / n x B bytes per GPU in 2 (n - 1) steps::

    t = 2 (n - 1) / n x B / (bw x comm_eff) + 2 (n - 1) x latency

Link: inside a node (n <= gpus_per_node) the scale-up fabric. A ``switch`` (NVSwitch) gives each GPU its
full ``scaleup_bandwidth``; a ``full_mesh`` (one link per GPU pair, MI300X) gives a ring one link per hop,
``scaleup_bandwidth / scaleup_num_links``.

Across nodes the all-reduce is hierarchical (Jia et al. 2018, arXiv:1807.11205; NCCL likewise runs one
ring per NIC): reduce-scatter in the node (k = gpus_per_node GPUs), all-reduce of each GPU's B / k
shard across the m = ceil(n / k) nodes over its own NIC (scale-out bandwidth and latency), then
all-gather in the node::

    t = 2 x [(k - 1) / k x B / bw_up + (k - 1) lat_up] + 2 (m - 1) / m x (B / k) / bw_out + 2 (m - 1) lat_out
"""

from __future__ import annotations

import math
from typing import NamedTuple

from simulator.hardware.profile import HardwareProfile


class LinearTime(NamedTuple):
    """A time that is affine in the bytes moved: ``fixed_s + s_per_byte x bytes`` (0 for no bytes)."""

    s_per_byte: float
    fixed_s: float

    def time_s(self, num_bytes: float) -> float:
        """Seconds for ``num_bytes`` (0 when there is nothing to send)."""
        return 0.0 if num_bytes <= 0.0 else self.fixed_s + self.s_per_byte * num_bytes


def _scaleup_ring_link(hardware: HardwareProfile) -> tuple[float, float]:
    """(bytes/s, latency) of one ring hop inside a node, derated by comm_efficiency_frac."""
    bw = hardware.scaleup_bandwidth_bytes_per_s
    if hardware.scaleup_topology == "full_mesh":
        bw /= hardware.scaleup_num_links
    return bw * hardware.comm_efficiency_frac, hardware.scaleup_latency_s


def allreduce_coefficients(hardware: HardwareProfile, num_gpus: int) -> LinearTime:
    """The all-reduce time over ``num_gpus`` GPUs as ``fixed_s + s_per_byte x bytes`` (see module doc)."""
    n = num_gpus
    if n <= 1:
        return LinearTime(0.0, 0.0)
    bw_up, lat_up = _scaleup_ring_link(hardware)
    k = hardware.gpus_per_node
    if n <= k:
        return LinearTime(2.0 * (n - 1) / n / bw_up, 2.0 * (n - 1) * lat_up)
    m = math.ceil(n / k)
    bw_out = hardware.scaleout_bandwidth_bytes_per_s * hardware.comm_efficiency_frac
    s_per_byte = 2.0 * (k - 1) / k / bw_up + 2.0 * (m - 1) / m / k / bw_out
    fixed_s = 2.0 * (k - 1) * lat_up + 2.0 * (m - 1) * hardware.scaleout_latency_s
    return LinearTime(s_per_byte, fixed_s)


def allreduce_time_s(hardware: HardwareProfile, num_bytes: float, num_gpus: int) -> float:
    """Seconds to all-reduce ``num_bytes`` (the buffer size on each GPU) over ``num_gpus`` GPUs; 0 for one.

    In a node: 2 (n-1)/n x bytes / (bw x comm_eff) + 2 (n-1) x latency (ring; module doc for the link
    and the hierarchical variant across nodes).
    """
    return allreduce_coefficients(hardware, num_gpus).time_s(num_bytes)


def allgather_coefficients(hardware: HardwareProfile, num_gpus: int) -> LinearTime:
    """Ring all-gather of a ``bytes``-sized result: (n-1)/n x bytes / bw + (n-1) x latency, half an
    all-reduce (across nodes: the scale-out link, flat ring)."""
    n = num_gpus
    if n <= 1:
        return LinearTime(0.0, 0.0)
    if n <= hardware.gpus_per_node:
        bw, lat = _scaleup_ring_link(hardware)
    else:
        bw = hardware.scaleout_bandwidth_bytes_per_s * hardware.comm_efficiency_frac
        lat = hardware.scaleout_latency_s
    return LinearTime((n - 1) / n / bw, (n - 1) * lat)


def allgather_time_s(hardware: HardwareProfile, num_bytes: float, num_gpus: int) -> float:
    """Seconds to all-gather a result of ``num_bytes`` in total (each GPU holds 1/n) over ``num_gpus``."""
    return allgather_coefficients(hardware, num_gpus).time_s(num_bytes)


def p2p_time_s(hardware: HardwareProfile, num_bytes: float, same_node: bool) -> float:
    """Seconds to send ``num_bytes`` from one GPU to another: latency + bytes / (bw x comm_eff).

    Same node: a switch gives the pair the GPU's full scale-up bandwidth, a full mesh one link.
    Across nodes: the GPU's scale-out NIC. 0 for no bytes.
    """
    if num_bytes <= 0.0:
        return 0.0
    if same_node:
        bw = hardware.scaleup_bandwidth_bytes_per_s
        if hardware.scaleup_topology == "full_mesh":
            bw /= hardware.scaleup_num_links
        lat = hardware.scaleup_latency_s
    else:
        bw, lat = hardware.scaleout_bandwidth_bytes_per_s, hardware.scaleout_latency_s
    return lat + num_bytes / (bw * hardware.comm_efficiency_frac)
