"""The bundled hardware profiles: they load, every number is sourced, and the key facts are right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from simulator.errors import ConfigError, DataFileError, UnknownNameError
from simulator.hardware import HardwareProfile, list_hardware, load_hardware
from simulator.resources import hardware_profiles_dir

BUNDLED = ["a100-sxm", "b200", "b300", "h100-sxm", "h200-sxm", "mi300x"]

NATIVE_DTYPES = {
    "a100-sxm": {"bf16", "fp16", "int8"},
    "h100-sxm": {"bf16", "fp16", "fp8", "int8"},
    "h200-sxm": {"bf16", "fp16", "fp8", "int8"},
    "b200": {"bf16", "fp16", "fp8", "int8", "fp4"},
    "b300": {"bf16", "fp16", "fp8", "int8", "fp4"},
    "mi300x": {"bf16", "fp16", "fp8", "int8"},
}


def _raw(name: str) -> dict[str, Any]:
    data = yaml.safe_load((hardware_profiles_dir() / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_bundled_profile_is_listed_and_loads() -> None:
    assert list_hardware() == BUNDLED
    for name in BUNDLED:
        profile = load_hardware(name)
        assert profile.name == name, "a bundled profile's name must match its file name"
        assert profile.efficiency_note.strip()


@pytest.mark.parametrize("name", BUNDLED)
def test_every_numeric_field_has_a_non_empty_source(name: str) -> None:
    profile = load_hardware(name)
    for field, value in profile.model_dump().items():
        if field == "sources" or isinstance(value, bool) or not isinstance(value, int | float | dict):
            continue
        assert profile.sources.get(field, "").strip(), f"{name}: {field} has no source"


def test_a_profile_missing_a_source_is_rejected(tmp_path: Path) -> None:
    data = _raw("h100-sxm")
    del data["sources"]["tdp_w"]
    with pytest.raises(ValidationError, match="tdp_w"):
        HardwareProfile.model_validate(data)
    path = tmp_path / "no-tdp-source.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DataFileError, match=r"without a source.*tdp_w") as info:
        load_hardware(path)
    assert str(path) in str(info.value)


def test_a_new_dtype_needs_its_own_source_or_a_whole_table_source() -> None:
    data = _raw("h100-sxm")
    data["peak_flops_per_s"]["fp4"] = 4.0e15
    HardwareProfile.model_validate(data)  # the whole table is sourced
    del data["sources"]["peak_flops_per_s"]
    data["sources"]["peak_flops_per_s.bf16"] = "x"
    with pytest.raises(ValidationError, match=r"peak_flops_per_s\.fp4"):
        HardwareProfile.model_validate(data)


def test_h200_has_h100_compute_and_more_faster_memory() -> None:
    h100, h200 = load_hardware("h100-sxm"), load_hardware("h200-sxm")
    assert h200.hbm_bandwidth_bytes_per_s / h100.hbm_bandwidth_bytes_per_s == pytest.approx(4.8 / 3.35)
    assert h200.hbm_bytes / h100.hbm_bytes == pytest.approx(141 / 80)
    assert h200.peak_flops_per_s == h100.peak_flops_per_s


@pytest.mark.parametrize("name", BUNDLED)
def test_native_dtypes(name: str) -> None:
    profile = load_hardware(name)
    assert set(profile.peak_flops_per_s) == NATIVE_DTYPES[name]
    for dtype in ("bf16", "fp8", "fp4", "int8", "fp16"):
        assert profile.is_native(dtype) == (dtype in NATIVE_DTYPES[name])


def test_a100_has_no_fp8_and_says_so() -> None:
    with pytest.raises(ConfigError, match=r"a100-sxm\.peak_flops_per_s = 'fp8'.*native dtypes are"):
        load_hardware("a100-sxm").peak_flops("fp8")


def test_key_numbers() -> None:
    """Dense peaks and per-direction bandwidths, as given in the reference spec sheet."""
    b200, b300, mi300x, a100 = (load_hardware(n) for n in ("b200", "b300", "mi300x", "a100-sxm"))
    assert b200.peak_flops("fp4") == pytest.approx(9.0e15)
    assert b300.peak_flops("fp4") == pytest.approx(14.0e15)
    assert b300.peak_flops("int8") == pytest.approx(0.15e15)
    assert b200.scaleup_bandwidth_bytes_per_s == b300.scaleup_bandwidth_bytes_per_s == pytest.approx(900e9)
    assert mi300x.scaleup_topology == "full_mesh"
    assert mi300x.scaleup_num_links == 7
    assert mi300x.scaleup_bandwidth_bytes_per_s == pytest.approx(7 * 64e9)
    assert mi300x.memory_efficiency_frac == pytest.approx(0.81)
    assert mi300x.compute_efficiency_frac == pytest.approx(0.45)
    assert a100.host_link_bandwidth_bytes_per_s == pytest.approx(32e9)
    assert b300.scaleout_bandwidth_bytes_per_s == pytest.approx(100e9)
    for name in ("h100-sxm", "h200-sxm", "b200", "mi300x"):
        assert load_hardware(name).scaleout_bandwidth_bytes_per_s == pytest.approx(50e9)
        assert load_hardware(name).host_link_bandwidth_bytes_per_s == pytest.approx(64e9)


def test_a_user_profile_by_path(tmp_path: Path) -> None:
    data = _raw("h100-sxm")
    data["name"] = "my-h100"
    data["hbm_bytes"] = 94e9
    path = tmp_path / "my-h100.yml"
    path.write_text(yaml.safe_dump(data))
    profile = load_hardware(str(path))
    assert profile.name == "my-h100"
    assert profile.hbm_bytes == 94e9


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"hardware = 'h900'.*known names are a100-sxm, b200") as info:
        load_hardware("h900")
    assert info.value.known == BUNDLED


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_hardware(tmp_path / "absent.yaml")


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\npeak_flops_per_s: {bf16: [1, 2\n")
    with pytest.raises(DataFileError, match="not valid YAML") as info:
        load_hardware(path)
    assert str(path) in str(info.value)


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(DataFileError, match="must be a YAML mapping"):
        load_hardware(path)


def test_an_unknown_key_and_a_bad_value_are_named(tmp_path: Path) -> None:
    data = _raw("h100-sxm")
    data["hbm_gb"] = 80
    data["memory_efficiency_frac"] = 1.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DataFileError) as info:
        load_hardware(path)
    message = str(info.value)
    assert "hbm_gb" in message
    assert "memory_efficiency_frac = 1.5" in message
