"""Calibration tables without JAX: the fit reproduces a known curve, the loader rejects bad files, and the
cost model uses a table only when given one (spec-only numbers unchanged)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from calibration.fit import build_table, fit_curves
from simulator.config import LayoutConfig, PrecisionConfig
from simulator.errors import DataFileError
from simulator.hardware import load_hardware
from simulator.hardware.calibration import CalibrationTable, find_calibration, load_calibration
from simulator.model import load_model
from simulator.ops import gemm_time_s
from simulator.step_cost import BatchShape, CostModel

PEAK = {"bf16": 100e12}
BW = 2e12


def _gemm_eff(roofline_s: float) -> float:
    """A smooth synthetic curve: launch overhead dominates small ops, ~0.9 of the roofline for big ones."""
    return 0.9 * roofline_s / (roofline_s + 20e-6) + 0.02


def _ideal(m: int, n: int, k: int) -> float:
    return max(2.0 * m * n * k / PEAK["bf16"], (n * k + m * k + m * n) * 2.0 / BW)


def _synthetic(ms: list[int], eff: Any, shapes: Any = ((4096, 4096),)) -> list[dict[str, Any]]:
    out = []
    for m in ms:
        for n, k in shapes:
            flops, nbytes = 2.0 * m * n * k, n * k * 2.0 + (m * k + m * n) * 2.0
            ideal = _ideal(m, n, k)
            out.append(
                {
                    "op_class": "gemm",
                    "dtype": "bf16",
                    "op": "matmul",
                    "shape": {"m": m, "n": n, "k": k},
                    "flops": flops,
                    "num_bytes": nbytes,
                    "time_s": ideal / eff(ideal),
                }
            )
    return out


def _raw(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "device": "synthetic",
        "backend": "gpu",
        "driver": "synthetic",
        "jax_version": "0",
        "date": "2026-01-01",
        "step_model": {},
        "steps": [],
        "dispatch_s": 0.0,
        "measurements": measurements,
    }


def _table(measurements: list[dict[str, Any]], profile: str = "h100-sxm") -> CalibrationTable:
    return build_table(_raw(measurements), profile, "synthetic test table", PEAK, BW)


def test_fit_reproduces_a_synthetic_efficiency_curve() -> None:
    ms = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    table = _table(_synthetic(ms, _gemm_eff))
    # 4096 x 4096 weights: memory-bound up to the ridge (m ~ 50 tokens), compute-bound above
    assert {(c.op_class, c.bound) for c in table.curves} == {("gemm", "memory"), ("gemm", "compute")}
    for m in ms:
        bound = (
            "compute"
            if 2.0 * m * 4096 * 4096 / PEAK["bf16"] >= (4096 * 4096 + 2 * m * 4096) * 2 / BW
            else "memory"
        )
        curve = table.curve("gemm", "bf16", bound)
        assert curve is not None
        assert curve.lookup(_ideal(m, 4096, 4096)) == (pytest.approx(_gemm_eff(_ideal(m, 4096, 4096))), False)
        assert table.op_time_s("gemm", "bf16", 2.0 * m * 4096 * 4096, (4096 * 4096 + 2 * m * 4096) * 2.0) == (
            pytest.approx(_ideal(m, 4096, 4096) / _gemm_eff(_ideal(m, 4096, 4096)), rel=1e-12)
        )
    curve = table.curve("gemm", "bf16", "compute")
    assert curve is not None
    for m in (300, 700, 3000):  # between points: log-linear interpolation stays close to the smooth curve
        size = _ideal(m, 4096, 4096)
        assert curve.lookup(size).efficiency_frac == pytest.approx(_gemm_eff(size), rel=0.03)


def test_outside_the_measured_range_is_clamped_and_flagged() -> None:
    curve = _table(_synthetic([256, 1024, 4096], _gemm_eff)).curve("gemm", "bf16", "compute")
    assert curve is not None and len(curve.points) == 3
    lo, hi = _ideal(256, 4096, 4096), _ideal(4096, 4096, 4096)
    assert curve.lookup(lo / 10) == (pytest.approx(_gemm_eff(lo)), True)
    assert curve.lookup(hi * 10) == (pytest.approx(_gemm_eff(hi)), True)
    assert curve.lookup(hi).clamped is False


def test_many_sizes_are_binned_and_points_above_the_roofline_clipped() -> None:
    ms = list(range(200, 400))
    curves, clipped = fit_curves(_synthetic(ms, lambda s: 0.5, ((4096, 4096), (8192, 4096))), PEAK, BW)
    assert clipped == 0 and len(curves) == 1 and 2 <= len(curves[0]["points"]) <= 16
    assert all(p["efficiency_frac"] == pytest.approx(0.5) for p in curves[0]["points"])
    curves, clipped = fit_curves(_synthetic([64, 128, 256], lambda s: 1.25), PEAK, BW)
    assert clipped == 3 and all(p["efficiency_frac"] == 1.0 for c in curves for p in c["points"])


def _write(tmp_path: Path, data: Any, name: str = "h100-sxm.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _good() -> dict[str, Any]:
    return _table(_synthetic([1, 64, 4096], _gemm_eff)).model_dump(mode="json")


def test_a_written_table_loads_back(tmp_path: Path) -> None:
    path = _write(tmp_path, _good())
    assert load_calibration(path) == CalibrationTable.model_validate(_good())
    table = find_calibration("h100-sxm", tmp_path)
    assert table is not None and table.source == "synthetic test table"
    assert find_calibration("no-such-profile", tmp_path) is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("curves"), "curves"),
        (lambda d: d.pop("hbm_bandwidth_bytes_per_s"), "hbm_bandwidth_bytes_per_s"),
        (
            lambda d: d["curves"][0]["points"][1].update(efficiency_frac=1.5),
            "curves.0.points.1.efficiency_frac",
        ),
        (lambda d: d["curves"][0]["points"][1].pop("size"), "curves.0.points.1.size"),
        (lambda d: d["curves"][0].update(size_variable="m"), "curves.0.size_variable"),
        (lambda d: d["curves"][0].pop("bound"), "curves.0.bound"),
        (lambda d: d["curves"][0]["points"].reverse(), "strictly increasing"),
        (lambda d: d["curves"].append(d["curves"][0]), "more than one curve"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["curves"][0].update(op_class="softmax"), "curves.0.op_class"),
    ],
)
def test_malformed_or_partial_tables_name_the_file_and_field(tmp_path: Path, edit: Any, field: str) -> None:
    data = _good()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(DataFileError, match=field.replace(".", r"\.").replace("(", r"\(")) as info:
        load_calibration(path)
    assert str(path) in str(info.value)


def test_unreadable_tables_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not valid JSON"):
        load_calibration(_write(tmp_path, '{"curves": [', "a.json"))
    with pytest.raises(DataFileError, match="must be a JSON object"):
        load_calibration(_write(tmp_path, "[1, 2]", "b.json"))
    with pytest.raises(DataFileError, match="no such calibration table"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(DataFileError, match="named for 'a100-sxm'"):
        find_calibration("a100-sxm", _write(tmp_path, _good(), "a100-sxm.json").parent)


def _cost(table: CalibrationTable | None) -> CostModel:
    model, hw = load_model("llama-3.1-8b"), load_hardware("h100-sxm")
    return CostModel.build(model, hw, PrecisionConfig(), LayoutConfig(tp=2), table)


SHAPES = [
    BatchShape(num_decode_tokens=8, decode_kv_tokens=8 * 1000, num_logit_tokens=8),
    BatchShape(
        num_prefill_tokens=512,
        num_prefill_seqs=1,
        prefill_attn_pairs=512 * 513 / 2,
        prefill_kv_tokens=512,
        num_logit_tokens=1,
    ),
]


def test_without_a_table_the_cost_model_is_spec_only() -> None:
    spec = _cost(None)
    assert not spec.calibrated and spec.calibration_source is None
    table = _table(_synthetic([1, 64, 4096], lambda m: 1.0))
    cal = _cost(table)
    assert cal.calibrated and cal.calibration_source == "synthetic test table"
    for shape in SHAPES:
        a, b = spec.step(shape), cal.step(shape)
        assert (a.flops, a.num_bytes, a.comm_s) == (b.flops, b.num_bytes, b.comm_s)
        assert a.time_s != b.time_s


def test_a_calibrated_gemm_is_the_ideal_roofline_over_the_fitted_efficiency() -> None:
    table = _table(_synthetic([1, 64, 4096], _gemm_eff))
    m, n, k = 4096, 4096, 4096  # a measured point: exactly roofline / efficiency
    ideal = _ideal(m, n, k)
    assert gemm_time_s("h100-sxm", m, n, k, "bf16", table) == pytest.approx(
        ideal / _gemm_eff(ideal), rel=1e-12
    )
    # fp8 has no curve in the table: the profile's constant factors price it, as without a table
    assert gemm_time_s("h100-sxm", m, n, k, "fp8", table) == gemm_time_s("h100-sxm", m, n, k, "fp8")


def test_calibrated_step_time_falls_as_efficiency_rises() -> None:
    slow = _cost(_table(_synthetic([1, 64, 4096], lambda m: 0.25)))
    fast = _cost(_table(_synthetic([1, 64, 4096], lambda m: 0.5)))
    for shape in SHAPES:
        assert fast.step(shape).compute_s < slow.step(shape).compute_s
    assert math.isfinite(slow.decode_step_time_s(1, 10))


def test_a_scenario_says_whether_it_is_calibrated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator import Scenario, simulate
    from simulator.cli import main
    from simulator.resources import hardware_profiles_dir

    small = {"model": "llama-3.1-8b", "workload.num_requests": 20}
    spec = simulate(Scenario.default(small)).summary()
    assert spec["calibrated"] is False and spec["calibration_source"] == "spec-only"
    # a profile given as a path picks up the table beside it (here: calibration/<name>.json)
    profile = tmp_path / "h100-sxm.yaml"
    profile.write_text((hardware_profiles_dir() / "h100-sxm.yaml").read_text())
    (tmp_path / "calibration").mkdir()
    _write(tmp_path / "calibration", _good())
    cal = simulate(Scenario.default({**small, "hardware": str(profile)})).summary()
    assert cal["calibrated"] is True and cal["calibration_source"] == "synthetic test table"
    assert cal["ttft_p50_s"] != spec["ttft_p50_s"]
    args = ["run", "--set", "model=llama-3.1-8b", "--set", "workload.num_requests=20"]
    assert main([*args, "--set", f"hardware={profile}"]) == 0
    assert "calibrated: synthetic test table" in capsys.readouterr().out
    assert main(args) == 0
    assert "spec-only" in capsys.readouterr().out


def test_the_committed_cpu_measurements_fit_better_than_spec_only() -> None:
    """The full suite measured on the development CPU (tests/data/calibration): real data, no JAX needed."""
    from calibration.evaluate import calibrate, error_summary
    from calibration.fit import check_raw

    path = Path(__file__).parent / "data" / "calibration" / "cpu-x86-64-raw.json"
    raw = check_raw(json.loads(path.read_text(encoding="utf-8")), str(path))
    result = calibrate(raw, "cpu-dev")
    assert result.table.driver == raw["driver"] and len(result.steps) == len(raw["steps"]) == 8
    summary = error_summary(result.steps)
    assert summary["median_after_pct"] < summary["median_before_pct"] / 2
    assert summary["worst_after_pct"] < summary["worst_before_pct"]
