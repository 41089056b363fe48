"""HTML reports opened in a real headless browser (Debian's chromium): no console errors, figures drawn.

Chromium's ``--dump-dom`` prints the page after its scripts ran (plotly turns each figure's div into a
``js-plotly-plot`` with one ``trace scatter`` group per drawn trace) and ``--enable-logging=stderr``
prints every console message and uncaught exception as an ``INFO:CONSOLE`` line. Skipped when no
chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from simulator.cli import main

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

SMALL = {
    "name": "small-8b",
    "model": "llama-3.1-8b",
    "workload": {"num_requests": 60, "input_tokens": 256, "output_tokens": 32, "rate_per_s": 8},
    "slo": {"ttft_p99_s": 0.05},
}


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the console messages chromium logged."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def _drawn_traces(dom: str, index: int) -> int:
    """Scatter traces drawn inside figure ``index`` (0 when plotly did not render it)."""
    start = dom.find(f'id="trilemma-figure-{index}"')
    if start < 0:
        return 0
    opening = dom[start : dom.find(">", start)]
    if "js-plotly-plot" not in opening:
        return 0
    end = dom.find('id="trilemma-figure-', start + 1)
    return len(re.findall(r'class="trace scatter', dom[start : end if end > 0 else len(dom)]))


def test_a_broken_page_shows_up(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><div id="trilemma-figure-0"></div><script>notDefined();</script></body></html>'
    )
    dom, console = render(page, tmp_path / "profile")
    assert any("Uncaught ReferenceError" in line for line in console)
    assert _drawn_traces(dom, 0) == 0


def test_reports_load_without_console_errors_and_draw_their_figures(tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(yaml.safe_dump(SMALL))
    fp8 = tmp_path / "fp8.yaml"
    fp8.write_text(yaml.safe_dump(SMALL | {"name": "small-8b-fp8", "precision": {"weights": "fp8"}}))
    pages = {
        "run": (["run", str(scenario), "-q", "--set", "layout.dp=2"], 2 + 2),  # TTFT, E2E; 2 replicas
        "curve": (["curve", str(scenario), "--rates", "4,16"], 5 + 2),  # 5 latencies; throughput, goodput
        "compare": (["compare", str(scenario), str(fp8)], 2),  # configurations, Pareto front
    }
    for name, (args, num_traces) in pages.items():
        page = tmp_path / f"{name}.html"
        assert main([*args, "--report", str(page)]) == 0
        dom, console = render(page, tmp_path / "profile")
        assert console == [], f"{name}: {console}"
        assert _drawn_traces(dom, 0) >= num_traces, name
        assert "spec-only" in dom or "calibrated" in dom
