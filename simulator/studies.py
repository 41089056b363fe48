"""What-if studies (layer L5): latency-load curves and side-by-side comparisons of configurations.

``curve`` plays one scenario at several arrival rates (one row per rate); ``compare`` plays several
scenarios and adds cost per million output tokens, tokens per second per watt and the
throughput-latency Pareto front. Rows hold seconds (``_s``), rates (``_per_s``, ``_rps``), tokens per
second (``_tok_s``), US dollars (``_usd``) and fractions (``_frac``); reports convert units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulator.capacity import CostInputs, check_slo, rate_scenario, run_cost
from simulator.config import Scenario
from simulator.errors import ConfigError
from simulator.simulate import SimulationResult, simulate

MAX_RATES = 200
LATENCY_KEYS = tuple(
    f"{name}_{q}_s" for name in ("ttft", "itl", "tpot", "e2e") for q in ("p50", "p90", "p99")
)
LOAD_KEYS = ("request_throughput_rps", "output_throughput_tok_s", "gpu_busy_frac", "mean_batch_size")
_RATES_HELP = "start:stop:count such as 1:40:20 (count rates from start to stop), or a list such as 2,4,8"


def parse_rates(text: str) -> tuple[float, ...]:
    """``"1:40:20"`` -> 20 evenly spaced rates from 1 to 40; ``"2,4,8"`` -> those rates (req/s)."""
    try:
        if ":" in text:
            start_text, stop_text, count_text = text.split(":")
            start, stop, count = float(start_text), float(stop_text), int(count_text)
            if count < 1 or count > MAX_RATES or stop < start:
                raise ValueError
            rates = tuple(float(r) for r in np.linspace(start, stop, count))
        else:
            rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError("--rates", text, f"{_RATES_HELP}; at most {MAX_RATES} rates") from None
    if not rates or len(rates) > MAX_RATES or not all(r > 0 and math.isfinite(r) for r in rates):
        raise ConfigError("--rates", text, f"{_RATES_HELP}; every rate > 0, at most {MAX_RATES} rates")
    return rates


def result_row(result: SimulationResult) -> dict[str, Any]:
    """A run as one row: offered rate, load, the latency percentiles it has, goodput and SLO verdict."""
    s = result.summary()
    check = check_slo(result)
    return {
        "rate_per_s": result.scenario.workload.rate_per_s,
        **{k: s[k] for k in LOAD_KEYS},
        **{k: s[k] for k in LATENCY_KEYS if k in s},
        "goodput_rps": check.goodput_rps,
        "slo_met_frac": check.slo_met_frac,
        "meets_slo": check.meets_slo,
    }


def curve(scenario: Scenario, rates: Sequence[float], *, duration_s: float | None = None) -> pd.DataFrame:
    """Latency and throughput against offered load: the scenario played at each rate, one row each.

    ``duration_s`` plays each rate for about that many simulated seconds (the request count scales
    with the rate; see ``simulator.capacity.rate_scenario``); without it every rate sends the
    scenario's ``workload.num_requests``.

    Columns: rate_per_s, request_throughput_rps, output_throughput_tok_s, gpu_busy_frac,
    mean_batch_size, the TTFT/ITL/TPOT/E2E percentiles of the summary (p50/p90/p99 where it has them),
    goodput_rps (requests meeting every per-request SLO target per second), slo_met_frac, meets_slo.
    """
    if not rates:
        raise ConfigError("rates", list(rates), "at least one arrival rate (req/s)")
    rows = [result_row(simulate(rate_scenario(scenario, rate, duration_s))) for rate in sorted(rates)]
    return pd.DataFrame(rows)


def pareto_front(throughput: Sequence[float], latency: Sequence[float]) -> list[bool]:
    """True where no other point has at least the throughput and at most the latency (one strictly).

    Points with a NaN are never on the front.
    """
    t = np.asarray(throughput, dtype=float)
    lat = np.asarray(latency, dtype=float)
    front = []
    for i in range(len(t)):
        if np.isnan(t[i]) or np.isnan(lat[i]):
            front.append(False)
            continue
        dominated = (t >= t[i]) & (lat <= lat[i]) & ((t > t[i]) | (lat < lat[i]))
        front.append(not bool(dominated.any()))
    return front


def compare(
    scenarios: Sequence[Scenario],
    *,
    cost_inputs: CostInputs | None = None,
    latency_key: str = "e2e_p99_s",
) -> pd.DataFrame:
    """Play each scenario; one row each with throughput, latencies, cost and energy, Pareto marked.

    Extra columns over ``curve``'s: name, hardware, num_gpus, output_tok_s_per_gpu,
    cost_usd_per_mtok (and its four parts, see ``simulator.capacity.cost``), output_tok_s_per_w
    (output tokens per second over GPU power at TDP x busy fraction), and pareto (on the front of
    output_tok_s_per_gpu, higher better, against ``latency_key``, lower better).
    """
    if not scenarios:
        raise ConfigError("scenarios", [], "at least one scenario to compare")
    if latency_key not in LATENCY_KEYS:
        raise ConfigError("latency_key", latency_key, "one of " + ", ".join(LATENCY_KEYS))
    inputs = cost_inputs or CostInputs()
    rows = []
    for scenario in scenarios:
        result = simulate(scenario)
        s = result.summary()
        hw = result.resolved.hardware
        row: dict[str, Any] = {"name": scenario.name, "hardware": hw.name, "num_gpus": s["num_gpus"]}
        row |= result_row(result)
        row["output_tok_s_per_gpu"] = s["output_throughput_tok_s"] / s["num_gpus"]
        power_w = s["num_gpus"] * hw.tdp_w * s["gpu_busy_frac"]
        row["output_tok_s_per_w"] = s["output_throughput_tok_s"] / power_w if power_w > 0 else math.nan
        row |= _cost_columns(s, hw.name, hw.gpus_per_node, hw.tdp_w, inputs)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["pareto"] = pareto_front(frame["output_tok_s_per_gpu"].tolist(), frame[latency_key].tolist())
    return frame


def _cost_columns(
    summary: dict[str, Any], hardware: str, gpus_per_node: int, tdp_w: float, inputs: CostInputs
) -> dict[str, Any]:
    """cost_usd_per_mtok and its four parts; NaN when the run produced no tokens."""
    names = ("capital", "operations", "idle", "engineering")
    if not summary["output_throughput_tok_s"] > 0:
        return {"cost_usd_per_mtok": math.nan} | {f"{n}_usd_per_mtok": math.nan for n in names}
    cost = run_cost(summary, gpus_per_node=gpus_per_node, tdp_w=tdp_w, inputs=inputs, hardware=hardware)
    parts = {f"{n}_usd_per_mtok": getattr(cost, f"{n}_usd_per_mtok") for n in names}
    return {"cost_usd_per_mtok": cost.total_usd_per_mtok} | parts
