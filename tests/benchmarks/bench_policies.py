"""Every replica batching policy on the same workload: throughput, TTFT p99, ITL p99, E2E p99.

Llama-3.1-8B on 2 H100 replicas, bursty (gamma, CV 3) arrivals at 10 req/s, 1,000 requests, one prompt in
four of 4,000 tokens among 200-token chats, outputs 20-400 tokens; max_num_seqs 64, sarathi's chunk 512,
static's batch wait 0.5 s; and, on the same two GPUs, disaggregated pools (one prefill and one decode
replica, vllm's policy on each, the KV cache handed over NVLink). Prints a Markdown table (simulated
figures: the same on any machine).

    python tests/benchmarks/bench_policies.py
"""

from __future__ import annotations

from simulator import Scenario, simulate
from simulator.scheduling.policies import REPLICA_POLICIES

BASE = {
    "model": "llama-3.1-8b",
    "layout": {"dp": 2},
    "scheduler": {"max_num_seqs": 64, "chunk_size": 512, "batch_wait_s": 0.5},
    "workload": {
        "arrival": "gamma",
        "cv": 3,
        "rate_per_s": 10,
        "num_requests": 1000,
        "input_tokens": {"dist": "empirical", "values": [200, 200, 200, 4000]},
        "output_tokens": {"dist": "uniform", "low": 20, "high": 400},
    },
    "seed": 5,
}


def main() -> None:
    print("| policy | throughput req/s | output tok/s | TTFT p99 | ITL p99 | E2E p99 |")
    print("|---|---|---|---|---|---|")
    cases = {policy: {"scheduler.policy": policy} for policy in sorted(REPLICA_POLICIES)}
    cases["vllm, 1 prefill + 1 decode replica"] = {
        "disaggregation": {"prefill": {"num_replicas": 1}, "decode": {"num_replicas": 1}}
    }
    for name, updates in cases.items():
        s = simulate(Scenario.from_dict(BASE, updates)).summary()
        print(
            f"| {name} | {s['request_throughput_rps']:.2f} | {s['output_throughput_tok_s']:,.0f} | "
            f"{s['ttft_p99_s'] * 1e3:,.0f} ms | {s['itl_p99_s'] * 1e3:,.1f} ms | {s['e2e_p99_s']:.2f} s |"
        )


if __name__ == "__main__":
    main()
