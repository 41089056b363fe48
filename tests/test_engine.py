"""The SimPy engine end to end: an exact event log, M/D/1 against queueing theory, determinism, invariants.

Model ``llama-3.1-8b`` on ``h100-sxm`` (one GPU per replica) keeps every run small and fast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import SUMMARY_KEYS, Scenario, SimulationResult, resolve, simulate
from simulator.model.costs import causal_pairs
from simulator.step_cost import BatchShape
from simulator.workload import RequestTable

BASE: dict[str, Any] = {"model": "llama-3.1-8b", "hardware": "h100-sxm"}


def _scenario(**groups: Any) -> Scenario:
    return Scenario.from_dict(BASE | groups)


def _table(arrival_s: list[float], input_tokens: list[int], output_tokens: list[int]) -> RequestTable:
    return RequestTable(
        np.array(arrival_s, dtype=np.float64),
        np.array(input_tokens, dtype=np.int64),
        np.array(output_tokens, dtype=np.int64),
    )


def _utilization_for(data: dict[str, Any], num_blocks: int) -> float:
    """The ``scheduler.gpu_memory_utilization`` that leaves exactly ``num_blocks`` KV blocks."""
    m = resolve(Scenario.from_dict(data, {"scheduler.gpu_memory_utilization": 0.9})).memory
    fixed = m.weights_bytes_per_gpu + m.activation_bytes_per_gpu + m.runtime_reserve_bytes_per_gpu
    return (fixed + (num_blocks + 0.5) * m.block_size * m.kv_bytes_per_token_per_gpu) / m.hbm_bytes_per_gpu


def _prefill(*prompts: int) -> BatchShape:
    return BatchShape(
        num_prefill_tokens=sum(prompts),
        num_prefill_seqs=len(prompts),
        prefill_attn_pairs=sum(causal_pairs(p, 0) for p in prompts),
        prefill_kv_tokens=sum(prompts),
        num_logit_tokens=len(prompts),
    )


def _decode(*kv_lens: int) -> BatchShape:
    n = len(kv_lens)
    return BatchShape(num_decode_tokens=n, decode_kv_tokens=sum(kv_lens), num_logit_tokens=n)


def test_scripted_scenario_exact_event_log() -> None:
    """Four requests on one replica, every step priced by hand with the cost model."""
    scenario = _scenario()
    resolved = resolve(scenario)
    ovh = scenario.scheduler.step_overhead_s

    def step(shape: BatchShape) -> float:
        return resolved.cost.step(shape).time_s + ovh

    t1 = 0.0 + step(_prefill(100, 40))  # r0 and r1 arrive at 0 and prefill together
    t2 = t1 + step(_prefill(30))  # r2 arrived at 1 ms, mid-step: prefill priority, r0/r1 wait
    t3 = t2 + step(_decode(101, 41))  # r2 (1 output token) finished at t2; r1 finishes at t3
    t4 = t3 + step(_decode(102))  # r0's third token
    t5 = 1.0 + step(_prefill(20))  # r3 arrives at 1 s on an idle replica
    t6 = t5 + step(_decode(21))
    table = _table([0.0, 0.0, 0.001, 1.0], [100, 40, 30, 20], [3, 2, 1, 2])
    result = simulate(scenario, table)
    req = result.requests
    exact = pytest.approx
    assert req["first_token_s"].tolist() == exact([t1, t1, t2, t5], abs=1e-12, rel=0)
    assert req["finish_s"].tolist() == exact([t4, t3, t2, t6], abs=1e-12, rel=0)
    assert req["status"].tolist() == ["finished"] * 4 and req["replica"].tolist() == [0] * 4
    steps = result.steps
    assert steps["start_s"].tolist() == exact([0.0, t1, t2, t3, 1.0, t5], abs=1e-12, rel=0)
    assert (steps["start_s"] + steps["duration_s"]).tolist() == exact([t1, t2, t3, t4, t5, t6], abs=1e-12)
    assert steps["num_seqs"].tolist() == [2, 1, 2, 1, 1, 1]
    assert steps["num_prefill_tokens"].tolist() == [140, 30, 0, 0, 20, 0]
    assert steps["num_decode_tokens"].tolist() == [0, 0, 2, 1, 0, 1]
    assert steps["kv_used_blocks"].tolist() == [10, 12, 10, 7, 2, 2]  # 16-token blocks, after admission
    itl = sorted(zip(result.records.itl.gap_s, result.records.itl.count, strict=True))
    expected = sorted([(t3 - t1, 2), (t4 - t3, 1), (t6 - t5, 1)])
    assert [c for _, c in itl] == [c for _, c in expected]
    assert [g for g, _ in itl] == exact([g for g, _ in expected], abs=1e-12, rel=0)


def test_md1_queue_matches_pollaczek_khinchine_and_littles_law() -> None:
    """max_num_seqs=1 and fixed lengths make each replica an M/D/1 FIFO server of service time D.

    Tolerance: over 400 Lindley-recursion replications of M/D/1 at rho=0.5 with 20,000 customers the
    mean wait had a relative standard deviation of 2.6%; 10% per seed is ~4 sigma, 6% on the mean of
    three seeds ~4 sigma too.
    """
    prompt, output, rho, num = 64, 2, 0.5, 20_000
    data = BASE | {"scheduler": {"max_num_seqs": 1}}
    resolved = resolve(Scenario.from_dict(data))
    cost, ovh = resolved.cost, resolved.scenario.scheduler.step_overhead_s
    service_s = cost.prefill_time_s(prompt) + ovh
    service_s += sum(cost.decode_step_time_s(1, prompt + j) + ovh for j in range(1, output))
    rate = rho / service_s
    wq_theory = rho * service_s / (2.0 * (1.0 - rho))
    waits = []
    for seed in (1, 2, 3):
        workload = {"rate_per_s": rate, "num_requests": num, "input_tokens": prompt, "output_tokens": output}
        result = simulate(Scenario.from_dict(data | {"workload": workload, "seed": seed}))
        req = result.requests
        arrival, finish = req["arrival_s"].to_numpy(), req["finish_s"].to_numpy()
        expected_finish = np.empty(num)  # FIFO single server: f_n = max(a_n, f_{n-1}) + D
        last = 0.0
        for i, a in enumerate(arrival.tolist()):
            last = expected_finish[i] = max(a, last) + service_s
        np.testing.assert_allclose(finish, expected_finish, rtol=0, atol=1e-9)
        wait = float(np.mean(req["e2e_s"].to_numpy() - service_s))
        assert wait == pytest.approx(wq_theory, rel=0.10), f"seed {seed}"
        waits.append(wait)
        duration = finish.max() - arrival.min()
        assert result.summary()["gpu_busy_frac"] == pytest.approx(num * service_s / duration, rel=1e-9)
        assert result.summary()["gpu_busy_frac"] == pytest.approx(rho, rel=0.03)
        # Little's law: the time-average number in system equals lambda x mean time in system
        times = np.concatenate([arrival, finish])
        order = np.argsort(times, kind="stable")
        in_system = np.cumsum(np.concatenate([np.ones(num), -np.ones(num)])[order])
        area = float(np.sum(in_system[:-1] * np.diff(times[order])))
        mean_in_system = area / duration
        assert mean_in_system == pytest.approx(num / duration * req["e2e_s"].mean(), rel=1e-9)
        assert mean_in_system == pytest.approx(rate * (wq_theory + service_s), rel=0.06)
    assert float(np.mean(waits)) == pytest.approx(wq_theory, rel=0.06)


def _same_summary(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


def test_same_seed_same_records_other_seed_differs() -> None:
    data = {
        "layout": {"dp": 2},
        "scheduler": {"router": "least_outstanding", "max_num_seqs": 8},
        "workload": {
            "rate_per_s": 40.0,
            "num_requests": 200,
            "input_tokens": {"dist": "uniform", "low": 16, "high": 512},
            "output_tokens": {"dist": "lognormal", "mean": 40, "sigma": 0.8, "high": 200},
        },
        "seed": 7,
    }
    first, again = simulate(_scenario(**data)), simulate(_scenario(**data))
    pd.testing.assert_frame_equal(first.requests, again.requests)
    pd.testing.assert_frame_equal(first.steps, again.steps)
    assert _same_summary(first.summary(), again.summary())
    other = simulate(_scenario(**(data | {"seed": 8})))
    assert not first.requests["arrival_s"].equals(other.requests["arrival_s"])
    assert not _same_summary(first.summary(), other.summary())


def _check_invariants(result: SimulationResult) -> None:
    """What every run must satisfy, whatever the scenario."""
    req, steps, summary = result.requests, result.steps, result.summary()
    done = req["status"] == "finished"
    rejected = req["status"] == "rejected"
    assert (done | rejected).all(), "every request is finished or rejected"
    assert (req.loc[rejected, "reject_reason"].str.len() > 0).all()
    assert (req.loc[done, "reject_reason"] == "").all()
    fin = req[done]
    assert (fin["first_token_s"] >= fin["arrival_s"]).all() and (fin["ttft_s"] <= fin["e2e_s"]).all()
    assert fin["replica"].between(0, result.resolved.num_replicas - 1).all()
    assert summary["num_completed"] + summary["num_rejected"] == summary["num_requests"] == len(req)
    # one token per sequence per step (a chunk that does not finish its prompt samples none); every
    # token after the first is one inter-token gap
    if result.scenario.scheduler.policy in ("sarathi", "static"):  # chunks sample none; padding rows
        assert steps["num_seqs"].sum() >= fin["output_tokens"].sum()
    else:
        assert steps["num_seqs"].sum() == fin["output_tokens"].sum()
    itl = result.records.itl
    assert sum(itl.count) == (fin["output_tokens"] - 1).sum()
    gap_total = float(np.dot(np.asarray(itl.gap_s), np.asarray(itl.count, dtype=np.float64)))
    assert gap_total == pytest.approx((fin["finish_s"] - fin["first_token_s"]).sum(), rel=1e-9, abs=1e-9)
    # prompt tokens are computed, or read from the prefix cache, once each, plus what preemption redoes
    computed = steps["num_prefill_tokens"].sum() + result.records.prefix_hit_tokens
    recomputed = computed - fin["input_tokens"].sum()
    assert recomputed >= 0 and (recomputed == 0) == (summary["num_preemptions"] == 0)
    assert summary["num_preemptions"] == req["num_preemptions"].sum() == steps["num_preempted"].sum()
    blocks = result.records.kv_blocks_by_replica or [result.resolved.memory.num_kv_blocks] * len(
        result.records.kv_peak_used_blocks
    )
    assert (steps["kv_used_blocks"].to_numpy() <= np.asarray(blocks)[steps["replica"].to_numpy()]).all()
    assert 0.0 <= summary["kv_peak_frac"] <= 1.0
    if result.scenario.workload.arrival == "concurrency":
        assert _max_in_flight(req) <= (result.scenario.workload.concurrency or 0)


def _max_in_flight(req: pd.DataFrame) -> int:
    """The most requests with arrival_s <= t < finish_s at any t (rejected ones are never in flight)."""
    fin = req[req["status"] == "finished"]
    arrival, finish = fin["arrival_s"].to_numpy(), fin["finish_s"].to_numpy()
    return int(max(np.sum((arrival <= t) & (t < finish)) for t in arrival)) if len(fin) else 0


@st.composite
def _small_scenarios(draw: st.DrawFn) -> Scenario:
    arrival = draw(st.sampled_from(["poisson", "burst", "concurrency"]))
    low = draw(st.integers(1, 400))
    workload: dict[str, Any] = {
        "arrival": arrival,
        "num_requests": draw(st.integers(1, 60)),
        "input_tokens": {"dist": "uniform", "low": low, "high": low + draw(st.integers(0, 300))},
        "output_tokens": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 128))},
    }
    if arrival == "poisson":
        workload["rate_per_s"] = draw(st.floats(1.0, 300.0))
    if arrival == "concurrency":
        workload["concurrency"] = draw(st.integers(1, 6))
    block_size = draw(st.sampled_from([1, 8, 16, 32]))
    scheduler: dict[str, Any] = {
        "router": draw(
            st.sampled_from(["round_robin", "least_outstanding", "random", "least_kv", "power_of_two"])
        ),
        "policy": draw(st.sampled_from(["vllm", "orca", "sarathi", "static"])),
        "chunk_size": draw(st.sampled_from([None, 16, 256])),
        "batch_wait_s": draw(st.sampled_from([0.0, 0.05, 2.0])),
        "preemption_mode": draw(st.sampled_from(["recompute", "swap"])),
        "max_num_seqs": draw(st.integers(1, 16)),
        "max_num_batched_tokens": draw(st.integers(32, 2048)),
        "block_size": block_size,
    }
    if draw(st.booleans()):
        scheduler["max_model_len"] = draw(st.integers(64, 1024))
    if draw(st.booleans()):  # shared prefixes: cached, hit, evicted
        workload["prefix"] = {"num_prefixes": draw(st.integers(1, 4)), "tokens": draw(st.integers(1, 300))}
        scheduler["router"] = draw(st.sampled_from([scheduler["router"], "prefix_affinity"]))
    if arrival != "concurrency" and "prefix" not in workload and draw(st.booleans()):  # conversations
        workload["sessions"] = {
            "num_turns": draw(st.integers(1, 4)),
            "think_time_s": draw(st.sampled_from([0, 1])),
        }
        scheduler["router"] = draw(st.sampled_from([scheduler["router"], "prefix_affinity"]))
    if arrival != "concurrency" and draw(st.booleans()):  # a second, less urgent class: a batch backlog
        batch = {"name": "batch", "priority": 1, "arrival": "burst", "num_requests": draw(st.integers(1, 20))}
        workload = {"classes": [{"name": "chat", **workload}, batch]}
    data = BASE | {"layout": {"dp": draw(st.integers(1, 3))}, "scheduler": scheduler, "workload": workload}
    if scheduler["policy"] != "static" and draw(st.booleans()):  # disaggregated prefill/decode pools
        pools = {"num_replicas": draw(st.integers(1, 2))}, {"num_replicas": draw(st.integers(1, 2))}
        data["disaggregation"] = {"prefill": pools[0], "decode": pools[1]}
    data["seed"] = draw(st.integers(0, 2**32))
    kv_tokens = draw(st.integers(200, 4000))
    scheduler["gpu_memory_utilization"] = _utilization_for(data, -(-kv_tokens // block_size))
    return Scenario.from_dict(data)


@settings(max_examples=40, deadline=None)
@given(scenario=_small_scenarios())
def test_invariants_hold_on_small_random_scenarios(scenario: Scenario) -> None:
    _check_invariants(simulate(scenario))


def test_small_kv_cache_preempts_and_still_serves_everyone() -> None:
    data = BASE | {
        "workload": {"arrival": "burst", "num_requests": 24, "input_tokens": 200, "output_tokens": 200}
    }
    data["scheduler"] = {"gpu_memory_utilization": _utilization_for(data, 60)}  # 960 tokens; 25 blocks each
    result = simulate(Scenario.from_dict(data))
    assert result.resolved.memory.num_kv_blocks == 60
    assert result.summary()["num_preemptions"] > 0 and result.summary()["num_completed"] == 24
    _check_invariants(result)


def test_requests_that_cannot_be_served_are_rejected_with_a_reason() -> None:
    result = simulate(
        _scenario(scheduler={"max_model_len": 300}), _table([0.0, 0.1, 0.2], [100, 250, 50], [50, 60, 10])
    )
    req = result.requests
    assert req["status"].tolist() == ["finished", "rejected", "finished"]
    reason = str(req.loc[1, "reject_reason"])
    assert "max_model_len" in reason and "300" in reason and "250" in reason
    assert np.isnan(req.loc[1, ["first_token_s", "finish_s", "ttft_s"]].to_numpy(dtype=float)).all()
    assert req.loc[1, "replica"] == -1 and result.summary()["num_rejected"] == 1
    data = BASE | {"workload": {"num_requests": 3}}
    data["scheduler"] = {"gpu_memory_utilization": _utilization_for(data, 10)}  # 160 tokens
    result = simulate(Scenario.from_dict(data), _table([0.0, 0.1, 0.2], [100, 100, 100], [62, 61, 1]))
    assert result.requests["status"].tolist() == ["rejected", "finished", "finished"]
    # KV peaks at prompt + output - 1 tokens: 161 need 11 blocks, 160 fit in the 10 exactly
    assert "KV blocks" in str(result.requests.loc[0, "reject_reason"])


def test_closed_loop_keeps_concurrency_in_flight_and_burst_arrives_at_zero() -> None:
    lengths = {"input_tokens": {"dist": "uniform", "low": 32, "high": 256}, "output_tokens": 24}
    workload = {"arrival": "concurrency", "concurrency": 3, "num_requests": 40} | lengths
    result = simulate(_scenario(layout={"dp": 2}, workload=workload))
    req = result.requests
    assert _max_in_flight(req) == 3 and (req["arrival_s"].iloc[:3] == 0.0).all()
    # each finish issues the next request at that very time
    np.testing.assert_array_equal(req["arrival_s"].iloc[3:], np.sort(req["finish_s"])[:37])
    _check_invariants(result)
    burst = simulate(_scenario(workload={"arrival": "burst", "num_requests": 30} | lengths)).requests
    assert (burst["arrival_s"] == 0.0).all() and (burst["status"] == "finished").all()
    assert burst["ttft_s"].min() > 0.0


def test_closed_loop_survives_a_long_run_of_rejections() -> None:
    # A rejected request frees its client at once; 1200 in a row once overflowed the stack.
    workload = {"arrival": "concurrency", "concurrency": 1, "num_requests": 1200, "input_tokens": 200}
    result = simulate(_scenario(scheduler={"max_model_len": 100}, workload=workload))
    summary = result.summary()
    assert summary["num_rejected"] == 1200 and summary["num_completed"] == 0
    assert summary["request_throughput_rps"] == 0.0


def test_summary_has_every_key_with_sane_values() -> None:
    lengths = {"input_tokens": {"dist": "uniform", "low": 16, "high": 1024}, "output_tokens": 32}
    result = simulate(
        _scenario(layout={"dp": 2}, workload={"rate_per_s": 30.0, "num_requests": 300} | lengths)
    )
    summary, req = result.summary(), result.requests
    assert set(SUMMARY_KEYS) <= summary.keys()
    assert all(math.isfinite(summary[k]) for k in SUMMARY_KEYS)
    for key in ("gpu_busy_frac", "mfu_frac", "mbu_frac", "kv_peak_frac"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["ttft_p50_s"] <= summary["ttft_p90_s"] <= summary["ttft_p99_s"]
    for name in ("itl", "tpot", "e2e"):
        assert 0.0 < summary[f"{name}_p50_s"] <= summary[f"{name}_p99_s"], name
    assert summary["ttft_p50_s"] <= summary["e2e_p50_s"]
    duration = req["finish_s"].max() - req["arrival_s"].min()
    assert summary["duration_s"] == pytest.approx(duration, rel=1e-12)
    assert summary["request_throughput_rps"] == pytest.approx(summary["num_completed"] / duration, rel=1e-12)
    assert summary["output_throughput_tok_s"] == pytest.approx(req["output_tokens"].sum() / duration)
    assert summary["input_throughput_tok_s"] == pytest.approx(req["input_tokens"].sum() / duration)
    assert summary["ttft_p50_s"] == pytest.approx(req["ttft_s"].quantile(0.5), rel=1e-12)
    assert summary["num_requests"] == summary["num_completed"] == 300 and summary["num_rejected"] == 0
    assert summary["mean_batch_size"] >= 1.0 and summary["num_preemptions"] == 0
