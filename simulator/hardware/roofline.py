"""Roofline time of one operator on one GPU: the slower of its compute and its memory traffic.

Units: FLOPs, bytes, seconds. The model (Williams, Waterman and Patterson, "Roofline: an insightful
visual performance model for multicore architectures", CACM 2009), derated to what kernels achieve::

    t = max(flops / (peak_flops(dtype) x compute_eff), bytes / (hbm_bw x memory_eff)) + kernel_overhead

``compute_eff``, ``memory_eff`` and ``kernel_overhead`` come from the hardware profile (see its
``efficiency_note``). The overhead is charged once per op that does any work (an empty op costs 0).

With a calibration table (``simulator.hardware.calibration``) an op of a class the table covers costs
``max(flops / peak, bytes / hbm_bw) / efficiency(op class, dtype, bound, size)`` instead
(``CalibratedRoofline``: the measured efficiency absorbs the derating and the kernel overhead); other
classes keep the above.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.hardware.calibration import CalibrationTable
from simulator.hardware.profile import HardwareProfile


@dataclass(frozen=True, slots=True)
class Roofline:
    """The derated rates of one GPU for one compute dtype, for code that prices many ops.

    ``flops_per_s`` = peak(dtype) x compute_eff; ``bytes_per_s`` = hbm_bw x memory_eff.
    """

    flops_per_s: float
    bytes_per_s: float
    kernel_overhead_s: float

    @classmethod
    def of(cls, hardware: HardwareProfile, compute_dtype: str) -> Roofline:
        """Rates of ``hardware`` computing in ``compute_dtype`` (ConfigError if it is not native)."""
        return cls(
            flops_per_s=hardware.peak_flops(compute_dtype) * hardware.compute_efficiency_frac,
            bytes_per_s=hardware.hbm_bandwidth_bytes_per_s * hardware.memory_efficiency_frac,
            kernel_overhead_s=hardware.kernel_overhead_s,
        )

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity above which an op is compute-bound: flops_per_s / bytes_per_s."""
        return self.flops_per_s / self.bytes_per_s

    def time_s(self, flops: float, num_bytes: float) -> float:
        """Seconds for one op of ``flops`` FLOPs moving ``num_bytes`` HBM bytes (0 for an empty op)."""
        if flops <= 0.0 and num_bytes <= 0.0:
            return 0.0
        return max(flops / self.flops_per_s, num_bytes / self.bytes_per_s) + self.kernel_overhead_s


def op_time_s(hardware: HardwareProfile, flops: float, num_bytes: float, compute_dtype: str) -> float:
    """Seconds for one op on one GPU of ``hardware``.

    ``max(flops / (peak(compute_dtype) x compute_eff), num_bytes / (hbm_bw x memory_eff))
    + kernel_overhead_s``, the overhead only when the op does any work (flops or bytes > 0).
    """
    return Roofline.of(hardware, compute_dtype).time_s(flops, num_bytes)


def is_compute_bound(hardware: HardwareProfile, flops: float, num_bytes: float, compute_dtype: str) -> bool:
    """Whether the compute term of the roofline is the larger one."""
    roof = Roofline.of(hardware, compute_dtype)
    return flops / roof.flops_per_s >= num_bytes / roof.bytes_per_s


@dataclass(frozen=True, slots=True)
class CalibratedRoofline:
    """Op times from a calibration table, falling back to ``fallback`` for classes it does not cover."""

    table: CalibrationTable
    fallback: Roofline

    def time_s(self, op_class: str, dtype: str, flops: float, num_bytes: float) -> float:
        """Seconds for one op of ``op_class`` computing in ``dtype`` (0 for an empty op)."""
        if flops <= 0.0 and num_bytes <= 0.0:
            return 0.0
        t = self.table.op_time_s(op_class, dtype, flops, num_bytes)
        return self.fallback.time_s(flops, num_bytes) if t is None else t
