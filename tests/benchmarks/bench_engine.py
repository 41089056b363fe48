"""Engine speed: simulated requests per wall-second, events per second, peak memory.

Plays N requests of the bundled Azure 2023 conversation trace (wrapped around past its 19,366 rows)
through D replicas of Llama-3.1-70B FP8 (TP=2) on H100s, and, as the baseline measured in the same
run, a bare SimPy loop with the same number of timeout events (the floor any SimPy engine pays).

    python tests/benchmarks/bench_engine.py                      # 100,000 requests, 8 replicas
    python tests/benchmarks/bench_engine.py --rate-per-s 0       # the trace's own rate (light load)

Each mode (step by step, and fast: runs of decode steps priced at once) runs in its own process, so
its peak memory is its own; the ratio of their wall times is printed.

Figures are printed, not asserted: timing on a shared machine is noise-prone. Target (issue 2):
>= 5,000 simulated requests per wall-second on a 2-core machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any

import simpy

from simulator import Scenario, resolve, simulate
from simulator.step_cost import BatchShape


def bare_simpy_events_per_s(num_events: int) -> float:
    """Events per second of a SimPy process doing nothing but timeouts (the baseline)."""
    env = simpy.Environment()

    def ticker(env: simpy.Environment, n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield env.timeout(0.001)

    env.process(ticker(env, num_events))
    start = time.perf_counter()
    env.run()
    return num_events / (time.perf_counter() - start)


def cost_step_us(scenario: Scenario) -> float:
    """Wall microseconds per CostModel.step call on a mixed prefill + decode shape."""
    cost = resolve(scenario).cost
    shape = BatchShape(512, 1, 512 * 1000 + 512 * 513 / 2, 1512, 100, 100_000, 101)
    num_calls = 100_000
    start = time.perf_counter()
    for _ in range(num_calls):
        cost.step(shape)
    return (time.perf_counter() - start) / num_calls * 1e6


def _run(scenario: Scenario, queue: Any) -> None:
    """Child process: simulate, report wall time, summary figures and peak RSS."""
    start = time.perf_counter()
    result = simulate(scenario)
    wall_s = time.perf_counter() - start
    queue.put((wall_s, result.summary(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def measure(scenario: Scenario) -> tuple[float, dict[str, Any], float]:
    """(wall seconds, summary, peak RSS MiB) of one run, in a fresh process so memory is its own."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run, args=(scenario, queue))
    child.start()
    wall_s, summary, rss_kib = queue.get()
    child.join()
    return wall_s, summary, rss_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--num-requests", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--rate-per-s", type=float, default=48.0, help="0: the trace's own rate")
    parser.add_argument("--mode", choices=["both", "step", "fast"], default="both")
    args = parser.parse_args()
    base = Scenario.default(
        {
            "layout.dp": args.replicas,
            "workload.num_requests": args.num_requests,
            "workload.rate_per_s": args.rate_per_s or None,
        }
    )
    print(f"scenario      : {base.name}, dp={args.replicas}, rate={args.rate_per_s or 'trace'} req/s")
    modes = ["step", "fast"] if args.mode == "both" else [args.mode]
    walls = {}
    for mode in modes:
        scenario = base.with_updates({"scheduler.fast_mode": mode == "fast"})
        wall_s, summary, rss_mib = measure(scenario)
        walls[mode] = wall_s
        num_events = summary["num_steps"] + summary["num_requests"]
        print(f"--- {mode} mode")
        print(f"requests      : {summary['num_requests']:,} ({summary['num_completed']:,} completed)")
        print(
            f"simulated     : {summary['duration_s']:,.0f} s, {summary['num_steps']:,} steps, "
            f"mean batch {summary['mean_batch_size']:.1f}, GPU busy {summary['gpu_busy_frac']:.0%}"
        )
        print(f"wall          : {wall_s:.2f} s")
        print(f"requests/s    : {summary['num_requests'] / wall_s:,.0f} simulated requests per wall-second")
        print(f"steps/s       : {num_events / wall_s:,.0f} simulated steps + arrivals per wall-second")
        print(f"peak memory   : {rss_mib:,.0f} MiB max RSS")
    if len(walls) == 2:
        print(f"fast / step   : {walls['step'] / walls['fast']:.2f}x faster")
    baseline = bare_simpy_events_per_s(200_000)
    print(f"baseline      : {baseline:,.0f} bare SimPy timeouts/s on this machine")
    print(f"cost model    : {cost_step_us(base):.2f} us per CostModel.step (mixed prefill + decode)")


if __name__ == "__main__":
    main()
