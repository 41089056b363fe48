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

Small messages across nodes: the ring's 2 (m - 1) scale-out latency steps dominate, and NCCL switches to
its (double binary) tree between nodes (github.com/NVIDIA/nccl, "tree" algorithm; Sanders et al. 2009):
every byte goes up and down the tree once, in 2 ceil(log2 m) latency steps. The all-reduce takes the
faster of the two for the scale-out part::

    across nodes, tree: 2 x (B / k) / bw_out + 2 ceil(log2 m) x lat_out    t = min(t_ring, t_tree)

Inside one NVSwitch/mesh node the ring alone is used: Vidur's 8xH100 NCCL timings (bundled in
tests/data/vidur) sit on a 35-40 us floor below 1 MB, as the ring's 2 (n - 1) x 3 us predicts, and a
tree or one-shot term would undercut them by half (tried; it doubled the error at small sizes).

All-to-all (MoE dispatch and combine): each GPU holds B bytes, (n - 1)/n of which go to peers. Through a
switch a GPU's full bandwidth carries them; on a full mesh each peer's share B/n has its own link, all
links busy at once; across nodes the part bound for other nodes, (n - k)/n x B, crosses the NIC::

    switch: lat + (n-1)/n B / bw      full mesh: lat + (B/n) / link_bw      nodes: max(in, out) + lat_out
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


class AllReduceTime(NamedTuple):
    """An all-reduce's time: the faster of the ring and the tree at each size."""

    ring: LinearTime
    tree: LinearTime

    def time_s(self, num_bytes: float) -> float:
        """Seconds for ``num_bytes`` (0 when there is nothing to send)."""
        return min(self.ring.time_s(num_bytes), self.tree.time_s(num_bytes))


def allreduce_algorithms(hardware: HardwareProfile, num_gpus: int) -> AllReduceTime:
    """Ring and tree all-reduce times over ``num_gpus`` GPUs (they differ only across nodes)."""
    ring = allreduce_coefficients(hardware, num_gpus)
    k = hardware.gpus_per_node
    if num_gpus <= k:
        return AllReduceTime(ring, ring)
    m = math.ceil(num_gpus / k)
    bw_up, lat_up = _scaleup_ring_link(hardware)
    bw_out = hardware.scaleout_bandwidth_bytes_per_s * hardware.comm_efficiency_frac
    s_per_byte = 2.0 * (k - 1) / k / bw_up + 2.0 / k / bw_out
    fixed_s = 2.0 * (k - 1) * lat_up + 2.0 * math.ceil(math.log2(m)) * hardware.scaleout_latency_s
    return AllReduceTime(ring, LinearTime(s_per_byte, fixed_s))


def allreduce_coefficients(hardware: HardwareProfile, num_gpus: int) -> LinearTime:
    """The ring all-reduce time over ``num_gpus`` GPUs as ``fixed_s + s_per_byte x bytes`` (module doc)."""
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

    In a node: ring, 2 (n-1)/n x bytes / (bw x comm_eff) + 2 (n-1) x latency. Across nodes:
    hierarchical, the faster of a ring and a tree between nodes (module doc).
    """
    return allreduce_algorithms(hardware, num_gpus).time_s(num_bytes)


def alltoall_coefficients(hardware: HardwareProfile, num_gpus: int) -> LinearTime:
    """All-to-all over ``num_gpus`` GPUs as ``fixed_s + s_per_byte x bytes`` (bytes each GPU holds)."""
    n, k = num_gpus, hardware.gpus_per_node
    if n <= 1:
        return LinearTime(0.0, 0.0)
    eff = hardware.comm_efficiency_frac
    if hardware.scaleup_topology == "full_mesh":
        link = hardware.scaleup_bandwidth_bytes_per_s / hardware.scaleup_num_links
        in_node = 1.0 / n / (link * eff)
    else:
        in_node = (min(n, k) - 1) / n / (hardware.scaleup_bandwidth_bytes_per_s * eff)
    if n <= k:
        return LinearTime(in_node, hardware.scaleup_latency_s)
    out = (n - k) / n / (hardware.scaleout_bandwidth_bytes_per_s * eff)
    return LinearTime(max(in_node, out), hardware.scaleout_latency_s)


def alltoall_time_s(hardware: HardwareProfile, num_bytes: float, num_gpus: int) -> float:
    """Seconds for an all-to-all where each of ``num_gpus`` GPUs holds ``num_bytes`` (1/n stays local)."""
    return alltoall_coefficients(hardware, num_gpus).time_s(num_bytes)


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
