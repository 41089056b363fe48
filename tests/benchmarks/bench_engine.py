"""Engine speed: simulated requests per wall-second, step by step vs fast mode, and peak memory.

Three engines can play a run: "step" (the SimPy engine, one event per step: the baseline), "runs" (the
SimPy engine with decode runs priced at once, ``simulator.engine.decode_run``) and "fast" (what
``scheduler.fast_mode`` gives by default: the compiled engine, ``simulator.engine.compiled``, for the
scenarios it covers, which include this one). ``--mode both`` (the default) times step and fast;
``--mode all`` adds runs.

Plays N requests of the bundled Azure 2023 conversation trace (wrapped around past its 19,366 rows)
through D replicas of Llama-3.1-70B FP8 (TP=2) on H100s, at the default scenario's load per replica
(4 req/s each: 64 req/s for 16 replicas) unless --rate-per-s says otherwise, in both modes in the same
run; and, as a floor measured in the same run, a bare SimPy loop with the same number of timeouts.

    python tests/benchmarks/bench_engine.py                         # 100,000 requests, 16 replicas
    python tests/benchmarks/bench_engine.py --requests 1000000 --mode fast   # the issue's 1M target
    python tests/benchmarks/bench_engine.py --requests 20000 --rate-per-s 0  # the trace's own rate
    python tests/benchmarks/bench_engine.py --requests 20000 --mode all      # + SimPy decode runs

A warm-up in the parent pays the one-time costs (200 requests in each engine, which loads numba and the
cached kernels, about a second; compiling them, once per install, about a minute) before the forks, so
the timed runs measure the simulation. Each mode runs in its own forked process, so its peak memory (max
RSS, the parent's pages at the fork included) is its own; all must give the same summary (checked).
The ratio of their speeds is printed,
and the wall time of 1,000,000 requests extrapolated from the measured rate (labelled as such) unless
N is at least that.

Figures are printed, not asserted: timing on a shared machine is noise-prone. Targets (issue 7):
1,000,000 requests in under 60 s on 2 cores (16,700 requests per wall-second), under 2 GB peak memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any

import simpy

from simulator import Scenario, resolve, simulate
from simulator.engine import compiled, loop
from simulator.engine.decode_kernel import warm_up
from simulator.step_cost import BatchShape
from simulator.workload import build_workload


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


def _run(scenario: Scenario, queue: Any, compiled_engine: bool) -> None:
    """Child process: simulate, report wall time, summary figures and peak RSS."""
    if not compiled_engine:
        loop.use_compiled_engine = lambda resolved, requests: False  # this process only
    start = time.perf_counter()
    result = simulate(scenario)
    wall_s = time.perf_counter() - start
    queue.put((wall_s, result.summary(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def measure(scenario: Scenario, compiled_engine: bool = True) -> tuple[float, dict[str, Any], float]:
    """(wall seconds, summary, peak RSS MiB) of one run, in a fresh process so memory is its own."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run, args=(scenario, queue, compiled_engine))
    child.start()
    wall_s, summary, rss_kib = queue.get()
    child.join()
    return wall_s, summary, rss_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", "--num-requests", dest="num_requests", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument(
        "--rate-per-s", type=float, default=None, help="default: 4 x replicas; 0: the trace's own rate"
    )
    parser.add_argument("--mode", choices=["both", "all", "step", "runs", "fast"], default="both")
    args = parser.parse_args()
    rate = 4.0 * args.replicas if args.rate_per_s is None else args.rate_per_s
    base = Scenario.default(
        {
            "layout.dp": args.replicas,
            "workload.num_requests": args.num_requests,
            "workload.rate_per_s": rate or None,
        }
    )
    print(f"scenario      : {base.name}, dp={args.replicas}, rate={rate or 'trace'} req/s")
    start = time.perf_counter()  # one-time costs, paid here so that the forked runs inherit them
    small = base.with_updates({"workload.num_requests": 200})
    simulate(small)
    warm_up()
    compiled.run_compiled(resolve(small), build_workload(small.workload, small.seed))
    print(f"warm-up       : {time.perf_counter() - start:.2f} s (200 requests, the numba kernels)")
    modes = {"both": ["step", "fast"], "all": ["step", "runs", "fast"]}.get(args.mode, [args.mode])
    speeds, summaries = {}, {}
    for mode in modes:
        scenario = base.with_updates({"scheduler.fast_mode": mode != "step"})
        wall_s, summary, rss_mib = measure(scenario, compiled_engine=mode == "fast")
        speeds[mode], summaries[mode] = summary["num_requests"] / wall_s, summary
        num_events = summary["num_steps"] + summary["num_requests"]
        print(f"--- {mode} mode")
        print(f"requests      : {summary['num_requests']:,} ({summary['num_completed']:,} completed)")
        print(
            f"simulated     : {summary['duration_s']:,.0f} s, {summary['num_steps']:,} steps, "
            f"mean batch {summary['mean_batch_size']:.1f}, GPU busy {summary['gpu_busy_frac']:.0%}"
        )
        print(f"wall          : {wall_s:.2f} s")
        print(f"requests/s    : {speeds[mode]:,.0f} simulated requests per wall-second")
        print(f"steps/s       : {num_events / wall_s:,.0f} simulated steps + arrivals per wall-second")
        print(f"peak memory   : {rss_mib:,.0f} MiB max RSS")
        if summary["num_requests"] < 1_000_000:
            print(f"1M requests   : {1_000_000 / speeds[mode]:,.0f} s (extrapolated from this rate)")
    if "step" in speeds:
        for mode in [m for m in speeds if m != "step"]:
            ratio = speeds[mode] / speeds["step"]
            print(f"{mode + ' / step':<14}: {ratio:.2f}x the requests per wall-second")
    if len(speeds) > 1:
        first = next(iter(summaries.values()))
        same = all(s[k] == first[k] for s in summaries.values() for k in ("duration_s", "num_steps"))
        print(f"same results  : {'yes' if same else 'NO: the modes differ'}")
    baseline = bare_simpy_events_per_s(200_000)
    print(f"baseline      : {baseline:,.0f} bare SimPy timeouts/s on this machine")
    print(f"cost model    : {cost_step_us(base):.2f} us per CostModel.step (mixed prefill + decode)")


if __name__ == "__main__":
    main()
