"""Engine speed: simulated requests per wall-second, events per second, peak memory.

Plays N requests of the bundled Azure 2023 conversation trace (wrapped around past its 19,366 rows)
through D replicas of Llama-3.1-70B FP8 (TP=2) on H100s, and, as the baseline measured in the same
run, a bare SimPy loop with the same number of timeout events (the floor any SimPy engine pays).

    python tests/benchmarks/bench_engine.py                      # 100,000 requests, 8 replicas
    python tests/benchmarks/bench_engine.py --rate-per-s 0       # the trace's own rate (light load)

Figures are printed, not asserted: timing on a shared machine is noise-prone. Target (issue 2):
>= 5,000 simulated requests per wall-second on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--num-requests", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--rate-per-s", type=float, default=48.0, help="0: the trace's own rate")
    args = parser.parse_args()
    scenario = Scenario.default(
        {
            "layout.dp": args.replicas,
            "workload.num_requests": args.num_requests,
            "workload.rate_per_s": args.rate_per_s or None,
        }
    )
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = simulate(scenario)
    wall_s = time.perf_counter() - start
    summary = result.summary()
    rss_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    num_events = summary["num_steps"] + summary["num_requests"]
    baseline = bare_simpy_events_per_s(num_events)
    print(f"scenario      : {scenario.name}, dp={args.replicas}, rate={args.rate_per_s or 'trace'} req/s")
    print(f"requests      : {summary['num_requests']:,} ({summary['num_completed']:,} completed)")
    print(
        f"simulated     : {summary['duration_s']:,.0f} s, {summary['num_steps']:,} steps, "
        f"mean batch {summary['mean_batch_size']:.1f}, GPU busy {summary['gpu_busy_frac']:.0%}"
    )
    print(f"wall          : {wall_s:.2f} s")
    print(f"requests/s    : {summary['num_requests'] / wall_s:,.0f} simulated requests per wall-second")
    print(f"events/s      : {num_events / wall_s:,.0f} (steps + arrivals)")
    print(
        f"baseline      : {baseline:,.0f} bare SimPy timeouts/s -> engine at "
        f"{num_events / wall_s / baseline:.0%} of bare SimPy"
    )
    print(f"cost model    : {cost_step_us(scenario):.2f} us per CostModel.step (mixed prefill + decode)")
    print(
        f"peak memory   : {rss_after_kib / 1024:,.0f} MiB max RSS "
        f"(+{(rss_after_kib - rss_before_kib) / 1024:,.0f} MiB during the run)"
    )


if __name__ == "__main__":
    main()
