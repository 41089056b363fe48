"""Calibration tables: measured efficiency curves that replace a profile's constant derating (L1).

A table (``hardware_profiles/calibration/<profile>.json``, written by ``trilemma calibrate``) holds, per
op class, dtype and bound (which roofline term is the larger), the achieved fraction of the roofline as a
function of the op's size, measured as its roofline time::

    roofline_s = max(flops / peak_flops(dtype), bytes / hbm_bw)
    efficiency = roofline_s / measured_time                      (in (0, 1]; time = roofline_s / efficiency)

``peak_flops_per_s`` and ``hbm_bandwidth_bytes_per_s`` of the table are the roofline the fractions are
relative to. Between points the curve is interpolated linearly in log(size); outside the measured range
it is clamped to the end point, and ``lookup`` says so (``clamped=True``): never extrapolated. Small ops
get low efficiencies (launch overhead), large ones approach what the kernels sustain; compute-bound and
memory-bound ops have separate curves (their ceilings differ). Units: FLOPs, bytes, seconds.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.datafiles import read_text_bounded, validate_file_data
from simulator.errors import DataFileError
from simulator.resources import hardware_profiles_dir
from simulator.units import MiB

OpClass = Literal["gemm", "attention_prefill", "attention_decode", "elementwise"]
OP_CLASSES: tuple[str, ...] = ("gemm", "attention_prefill", "attention_decode", "elementwise")
Bound = Literal["compute", "memory"]
MAX_CALIBRATION_FILE_BYTES = 32 * MiB
MAX_CURVE_POINTS = 4096

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Lookup(NamedTuple):
    """An efficiency read off a curve, and whether ``size`` lay outside the measured range."""

    efficiency_frac: float
    clamped: bool


class CurvePoint(BaseModel):
    """One fitted point: at ``size`` (roofline seconds), this fraction of the roofline."""

    model_config = _FROZEN
    size: float = Field(gt=0)
    efficiency_frac: float = Field(gt=0, le=1)


class EfficiencyCurve(BaseModel):
    """Achieved fraction of the roofline of one op class and dtype, over its size variable."""

    model_config = _FROZEN
    op_class: OpClass
    dtype: str
    bound: Bound = Field(description="ops whose compute (or memory) roofline term is the larger")
    size_variable: Literal["roofline_s"] = "roofline_s"
    extrapolation: Literal["clamp"] = "clamp"
    points: list[CurvePoint] = Field(min_length=1, max_length=MAX_CURVE_POINTS)

    @model_validator(mode="after")
    def _consistent(self) -> EfficiencyCurve:
        sizes = [p.size for p in self.points]
        if any(b <= a for a, b in pairwise(sizes)):
            raise ValueError(f"{self.op_class}/{self.dtype}: point sizes must be strictly increasing")
        return self

    def lookup(self, size: float) -> Lookup:
        """Efficiency at ``size``: log-linear interpolation, clamped (and flagged) outside the points."""
        pts = self.points
        if size <= pts[0].size:
            return Lookup(pts[0].efficiency_frac, size < pts[0].size)
        if size >= pts[-1].size:
            return Lookup(pts[-1].efficiency_frac, size > pts[-1].size)
        i = bisect_right([p.size for p in pts], size)
        lo, hi = pts[i - 1], pts[i]
        w = (math.log(size) - math.log(lo.size)) / (math.log(hi.size) - math.log(lo.size))
        return Lookup(lo.efficiency_frac + w * (hi.efficiency_frac - lo.efficiency_frac), False)


class CalibrationTable(BaseModel):
    """Efficiency curves of one accelerator, with the raw measurements they were fitted from."""

    model_config = _FROZEN
    schema_version: Literal[1]
    profile: str = Field(min_length=1, description="hardware profile name the table belongs to")
    source: str = Field(min_length=1, description="how the table was made")
    device: str = Field(min_length=1, description="JAX device kind, e.g. 'NVIDIA H100 80GB HBM3'")
    backend: str = Field(min_length=1, description="JAX backend: gpu, cpu, ...")
    driver: str = Field(min_length=1, description="accelerator driver (or the CPU model on a CPU)")
    jax_version: str = Field(min_length=1)
    date: str = Field(min_length=1, description="when the measurements were taken (UTC, ISO 8601)")
    peak_flops_per_s: dict[str, float] = Field(min_length=1, description="roofline peak per dtype")
    hbm_bandwidth_bytes_per_s: float = Field(gt=0, description="roofline bandwidth")
    curves: list[EfficiencyCurve] = Field(min_length=1)
    measurements: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    skipped: list[dict[str, str]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_curves(self) -> CalibrationTable:
        keys = [(c.op_class, c.dtype, c.bound) for c in self.curves]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"curves: more than one curve for {dup}")
        bad = sorted(k for k, v in self.peak_flops_per_s.items() if not v > 0)
        if bad:
            raise ValueError(f"peak_flops_per_s: must be > 0 for {bad}")
        return self

    def curve(self, op_class: str, dtype: str, bound: str) -> EfficiencyCurve | None:
        """The curve of ``op_class`` in ``dtype`` for ``bound`` (else the other bound's: a decode kernel
        measured only memory-bound), or None when the table has neither or no peak for ``dtype``."""
        if dtype not in self.peak_flops_per_s:
            return None
        found = [c for c in self.curves if c.op_class == op_class and c.dtype == dtype]
        for c in found:
            if c.bound == bound:
                return c
        return found[0] if found else None

    def roofline_s(self, dtype: str, flops: float, num_bytes: float) -> tuple[float, str]:
        """(max(flops / peak(dtype), bytes / bandwidth), "compute" or "memory"): an op's size and bound."""
        c, m = flops / self.peak_flops_per_s[dtype], num_bytes / self.hbm_bandwidth_bytes_per_s
        return (c, "compute") if c >= m else (m, "memory")

    def op_time_s(self, op_class: str, dtype: str, flops: float, num_bytes: float) -> float | None:
        """Seconds of one op from the curves (roofline_s / efficiency), None when no curve covers it."""
        if dtype not in self.peak_flops_per_s:
            return None
        ideal_s, bound = self.roofline_s(dtype, flops, num_bytes)
        curve = self.curve(op_class, dtype, bound)
        return None if curve is None else ideal_s / curve.lookup(ideal_s).efficiency_frac


def calibration_dir() -> Path:
    """The folder of bundled calibration tables (``hardware_profiles/calibration``)."""
    return hardware_profiles_dir() / "calibration"


def load_calibration(path: str | Path) -> CalibrationTable:
    """A calibration table from a JSON file; DataFileError naming the file and field when malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "no such calibration table")
    try:
        data = json.loads(read_text_bounded(path, MAX_CALIBRATION_FILE_BYTES))
    except json.JSONDecodeError as exc:
        raise DataFileError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataFileError(path, "a calibration table must be a JSON object")
    return validate_file_data(CalibrationTable, data, path)


def calibration_for(hardware: str | Path, profile_name: str) -> CalibrationTable | None:
    """The table a scenario's ``hardware`` uses: for a profile given as a YAML path, ``<name>.json``
    beside it or in a ``calibration/`` folder beside it; else (and for a bundled name) the bundled
    ``hardware_profiles/calibration/<name>.json``; None when there is none (spec-only)."""
    path = Path(hardware)
    if path.suffix in (".yaml", ".yml"):
        for folder in (path.parent, path.parent / "calibration"):
            if (folder / f"{profile_name}.json").is_file():
                return find_calibration(profile_name, folder)
    return find_calibration(profile_name)


def find_calibration(profile_name: str, folder: Path | None = None) -> CalibrationTable | None:
    """The table ``<folder>/<profile_name>.json`` (default: the bundled folder), or None if absent."""
    path = (folder or calibration_dir()) / f"{profile_name}.json"
    if not path.is_file():
        return None
    table = load_calibration(path)
    if table.profile != profile_name:
        raise DataFileError(path, f"profile = {table.profile!r}: the file is named for {profile_name!r}")
    return table
