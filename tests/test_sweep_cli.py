"""``trilemma sweep``: results and spec on disk, resume, Ctrl-C, and exit code 2 for a bad spec or option."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from simulator import SUMMARY_KEYS
from simulator.cli import main
from simulator.sweeps import ResultStore, expand, load_spec

SCENARIO = {"model": "llama-3.1-8b", "workload": {"num_requests": 30, "output_tokens": 16}}


def _write(folder: Path, spec: dict[str, Any]) -> Path:
    (folder / "scenarios").mkdir(exist_ok=True)
    (folder / "scenarios" / "small.yaml").write_text(yaml.safe_dump(SCENARIO))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_writes_rows_and_the_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(
        tmp_path,
        {
            "base": "scenarios/small.yaml",  # relative to the sweep file
            "grid": {"layout.tp": [1, 3]},
            "zip": {"workload.rate_per_s": [2.0, 6.0], "scheduler.max_num_seqs": [8, 64]},
            "seeds": [11],
        },
    )
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0
    assert "4 points (2 invalid, 2 ok)" in capsys.readouterr().out
    frame = ResultStore(out).read()
    assert len(frame) == 4 and set(SUMMARY_KEYS) <= set(frame.columns)
    assert {"layout.tp", "workload.rate_per_s", "scheduler.max_num_seqs", "seed", "wall_s"} <= set(frame)
    ok = frame[frame["status"] == "ok"].sort_values("workload.rate_per_s")
    assert list(ok["scheduler.max_num_seqs"]) == [8, 64] and (ok["num_completed"] == 30).all()
    assert (frame.loc[frame["layout.tp"] == 3, "status"] == "invalid").all()
    written, base_dir = load_spec(out / "sweep.yaml")  # re-runnable from anywhere: the base is inlined
    assert isinstance(written.base, dict) and written.base["model"] == "llama-3.1-8b"
    assert [p.point_id for p in expand(written, base_dir)] == [p.point_id for p in expand(*load_spec(spec))]


def test_resume_runs_only_the_new_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    first = _write(tmp_path, {"base": SCENARIO, "grid": {"workload.rate_per_s": [2.0]}, "num_seeds": 2})
    assert main(["sweep", str(first), "--out", str(out), "-q"]) == 0
    assert main(["sweep", str(first), "--out", str(out), "-q"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    more = _write(tmp_path, {"base": SCENARIO, "grid": {"workload.rate_per_s": [2.0, 3.0]}, "num_seeds": 2})
    num_first_parts = len(ResultStore(out).parts())  # rows are flushed as points finish: 1 or 2 parts
    assert main(["sweep", str(more), "--out", str(out), "-q", "--resume"]) == 0
    parts = [pd.read_parquet(p) for p in ResultStore(out).parts()]
    new_rows = pd.concat(parts[num_first_parts:])
    assert len(new_rows) == 2 and set(new_rows["workload.rate_per_s"]) == {3.0}
    assert sum(len(p) for p in parts) == 4
    num_parts = len(parts)
    assert main(["sweep", str(more), "--out", str(out), "-q", "--resume"]) == 0
    assert len(ResultStore(out).parts()) == num_parts  # nothing ran again


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ({"grid": {"layout.tpp": [1, 2]}}, [], "grid.layout.tpp"),
        ({"zip": {"layout.tp": [1, 2], "layout.dp": [1]}}, [], "give them equal lengths"),
        ({"base": "missing.yaml"}, [], "no such scenario file"),
        ({"base": SCENARIO, "random": {"samples": 0, "axes": {}}}, [], "random.samples"),
        ({"base": SCENARIO}, ["--backend", "ray"], "known backends are dask, local"),
        ({"base": SCENARIO}, ["--workers", "0"], "at least 1 worker"),
        ({"base": SCENARIO}, ["--point-timeout", "-1"], "positive number of seconds"),
    ],
)
def test_bad_input_exits_2_with_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: dict[str, Any], args: list[str], message: str
) -> None:
    path = _write(tmp_path, spec)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results").exists()  # nothing written for a sweep that cannot start


def test_a_missing_sweep_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_ctrl_c_keeps_the_finished_points_and_resume_completes_them(tmp_path: Path) -> None:
    base = {**SCENARIO, "workload": {"num_requests": 1500, "output_tokens": 16}}
    spec = _write(tmp_path, {"base": base, "grid": {"workload.rate_per_s": [1.0, 2.0, 4.0]}, "num_seeds": 8})
    out = tmp_path / "out"
    # SIGINT as at a terminal (a test runner started in the background may have it ignored)
    code = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    code += "from simulator.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code]
    command += ["sweep", str(spec), "--out", str(out), "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(  # in a process group of its own, as a terminal's foreground job
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "results").is_dir() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # let the workers start (and on fast machines a few points finish)
    os.killpg(child.pid, signal.SIGINT)  # the whole group, as a terminal does
    _, err = child.communicate(timeout=60)
    if child.returncode == 0:
        pytest.skip("the sweep finished before it could be interrupted (a very fast machine)")
    assert child.returncode == 130, err
    assert "Traceback" not in err, err
    assert "interrupted: " in err and "--resume" in err
    kept = ResultStore(out).read()
    assert f"{len(kept)} finished points kept" in err
    assert kept.empty or (kept["status"] == "ok").all()
    assert main(["sweep", str(spec), "--out", str(out), "-q", "--resume"]) == 0
    resumed = ResultStore(out).read()
    assert len(resumed) == 24 and resumed["point_id"].is_unique
    assert set(kept.get("point_id", [])) <= set(resumed["point_id"])


def test_the_readme_sweep_example_expands_as_it_says() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("```yaml\n# sweep.yaml")[1].split("```")[0]
    spec = yaml.safe_load("# sweep.yaml" + block)
    assert spec["base"] == "my_scenario.yaml"
    points = expand(*load_spec({**spec, "base": {"model": "llama-3.1-8b"}}))
    assert len(points) == 144 and "144 points" in block
    assert {p.values["precision.weights"] for p in points} == {"bf16", "fp8"}
    assert sum(p.scenario is not None for p in points) == 144
