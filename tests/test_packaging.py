"""An installed wheel (not only an editable checkout) finds its hardware profiles, models and traces."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("trilemma-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_carries_the_data(unpacked_wheel: Path) -> None:
    pkg = unpacked_wheel / "simulator"
    assert (pkg / "_data" / "hardware_profiles" / "h100-sxm.yaml").is_file()
    assert (pkg / "model" / "specs" / "llama-3.1-70b.yaml").is_file()
    assert (pkg / "workload" / "traces" / "azure-conv-2023.csv.gz").is_file()
    assert (pkg / "scenarios" / "default.yaml").is_file()
    assert (pkg / "measurements" / "mlperf.csv").is_file()
    entry_points = next(unpacked_wheel.glob("trilemma-*.dist-info")) / "entry_points.txt"
    assert "trilemma = simulator.cli:main" in entry_points.read_text()


def test_wheel_runs_outside_the_checkout(unpacked_wheel: Path, tmp_path: Path) -> None:
    code = (
        "import simulator, pathlib;"
        "where = pathlib.Path(simulator.__file__);"
        f"assert where.is_relative_to({str(unpacked_wheel)!r}), where;"
        "from simulator import list_hardware, list_models, list_traces, load_trace, Scenario, simulate;"
        "assert 'mi300x' in list_hardware() and 'qwen3-32b' in list_models();"
        "assert len(load_trace('azure-code-2023')) > 1000;"
        "s = simulate(Scenario.default({'workload.num_requests': 20}));"
        "assert s.summary()['num_completed'] == 20;"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(unpacked_wheel), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
