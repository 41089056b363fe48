"""The compiled engine (L4): whole simulations in numba, for the scenarios it covers, same records.

``run_engine`` hands a scenario here when ``compiled_engine_blocker`` finds nothing it cannot play and
the run is long enough to repay loading the kernel (``COMPILED_AFTER_REQUESTS``), or an earlier run in
the process loaded it. The kernel (``simulator.engine.compiled_kernel``) plays the step-by-step SimPy
engine event for event on arrays, so the records are identical (``tests/test_compiled_engine.py``),
at a small fraction of the cost per simulated step. This module builds its arrays, feeds it the
layers' work at token counts it has not seen (``CostModel.layer_terms``), drains its log buffers into
the run's records, and turns its error codes into the engine's errors.

Covered: open-loop and closed-loop traffic; request classes with their priorities (and priority
preemption); shared prefixes and prefix caching; multi-turn sessions; the vllm, orca and sarathi
policies; the round_robin, least_outstanding, least_kv, random and prefix_affinity routers (the random
router's draws are made beforehand and used in the order requests are routed, as the SimPy engine draws
them); recompute and swap preemption; spec-only cost models with pp = 1 and no attention-DP. Anything
else (more than 8 priority levels, speculative decoding, calibrated or pipelined cost models, the
power_of_two router, static batching, pools, autoscaling) runs in the SimPy engine.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from simulator.engine.records import STATUS_REJECTED, ItlLog, RequestLog, RunRecords, StepLog
from simulator.errors import SimulatorError
from simulator.resolve import ResolvedScenario, rejection_reasons
from simulator.rng import stream
from simulator.scheduling.policies import ADMISSION_WATERMARK_FRAC
from simulator.step_cost import CostModel
from simulator.workload import RequestTable

COMPILED_AFTER_REQUESTS = 2_000
"""Requests from which a run uses the compiled engine when the kernel is not loaded yet: loading numba
and the cached kernel costs about half a second (compiling it, once per checkout, about 40 s), what the
SimPy engine spends on some 2,000 requests (measured: the default scenario at 64 req/s on 16 replicas,
2,000 requests, 0.87 s in SimPy, 0.86 s compiled with the loading)."""

_KERNEL_MODULE = "simulator.engine.compiled_kernel"
_POLICIES = ("vllm", "orca", "sarathi")  # the kernel's policy codes, in order
_ROUTERS = ("round_robin", "least_outstanding", "least_kv", "random", "prefix_affinity")  # router codes
_MAX_PRIORITY_LEVELS = 8  # compiled_state.MAX_LEVELS
_ROWS_PER_FLUSH = 1 << 16
_GAPS_PER_FLUSH = 1 << 17


KERNEL_SOURCES = {
    "simulator.engine.compiled_kernel": (
        "engine/compiled_state.py",
        "engine/compiled_prefix.py",
        "engine/compiled_replica.py",
        "spec_pricing.py",
    ),
    "simulator.engine.decode_kernel": ("spec_pricing.py",),
}
"""The files (under ``simulator/``) whose code numba compiles into each cached kernel besides its own."""


def sources_digest(kernel_module: str) -> str:
    """sha256 of ``KERNEL_SOURCES[kernel_module]``, which the kernel records as ``SOURCES_DIGEST``:
    numba's cache is keyed on each function's own file, so an edit there alone would leave a stale
    kernel in ``__pycache__``; changing the digest changes the kernel's file, and so its cache."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES[kernel_module]:
        digest.update((Path(__file__).parent.parent / name).read_bytes())
    return digest.hexdigest()


def compiled_engine_blocker(resolved: ResolvedScenario, requests: RequestTable) -> str | None:
    """Why the compiled engine cannot play this run (None when it can)."""
    sched = resolved.scenario.scheduler
    cost = resolved.cost
    checks = (
        (not sched.fast_mode, "scheduler.fast_mode is false"),
        (resolved.pools is not None, "disaggregated prefill/decode pools"),
        (sched.policy not in _POLICIES, f"policy {sched.policy!r}"),
        (sched.router not in _ROUTERS, f"router {sched.router!r}"),
        (
            not isinstance(cost, CostModel) or cost.spec_terms() is None,
            "calibrated, pipelined or speculative cost model",
        ),
        (
            len(set(requests.class_priorities)) > _MAX_PRIORITY_LEVELS,
            f"more than {_MAX_PRIORITY_LEVELS} priority levels",
        ),
        (_num_prefixes(requests) * resolved.num_replicas > 50_000_000, "too many prefixes to cache"),
    )
    return next((why for blocked, why in checks if blocked), None)


def _num_prefixes(requests: RequestTable) -> int:
    """Prefix ids are 0 .. n - 1 (-1: none)."""
    return 1 if requests.prefix_id is None or not len(requests) else max(1, int(requests.prefix_id.max()) + 1)


def use_compiled_engine(resolved: ResolvedScenario, requests: RequestTable) -> bool:
    """Whether ``run_engine`` plays this run compiled: covered, and long enough or the kernel loaded."""
    if compiled_engine_blocker(resolved, requests) is not None:
        return False
    return len(requests) >= COMPILED_AFTER_REQUESTS or _KERNEL_MODULE in sys.modules


def load_compiled_engine() -> None:
    """Load numba and the compiled kernel now (compiling it if this checkout has no cache yet), so that
    every later covered run in this process uses it whatever its length (sweep workers, notebooks)."""
    importlib.import_module(_KERNEL_MODULE)


def run_compiled(resolved: ResolvedScenario, requests: RequestTable) -> RunRecords:
    """Play ``requests`` through the resolved cluster in the compiled kernel (see the module docstring)."""
    why = compiled_engine_blocker(resolved, requests)
    if why is not None:
        raise ValueError(f"the compiled engine does not cover this scenario: {why}")
    from simulator.engine import compiled_kernel as kernel
    from simulator.engine import compiled_state as layout

    assert layout.MAX_LEVELS == _MAX_PRIORITY_LEVELS

    log = RequestLog.empty(requests.arrival_s, requests.input_tokens, requests.output_tokens)
    log.class_id, log.class_names = requests.class_id, requests.class_names
    state = _initial_state(resolved, requests, log, layout)
    steps, itl = StepLog(), ItlLog()
    glob, rows, gaps, counts = state["glob"], state["rows"], state["itl_gap"], state["itl_count"]
    cost = resolved.cost
    assert isinstance(cost, CostModel)
    args = [state[name] for name in _ARGUMENTS]
    while True:
        code = kernel.run(*args)
        steps.data.frombytes(rows[: glob[layout.G_ROWS]].tobytes())
        itl.gap_s.frombytes(gaps[: glob[layout.G_ITL]].tobytes())
        itl.count.frombytes(counts[: glob[layout.G_ITL]].tobytes())
        glob[layout.G_ROWS] = glob[layout.G_ITL] = 0
        if code == kernel.DONE:
            break
        if code == kernel.NEED_LAYERS:
            num_tokens = int(glob[layout.G_NEED_TOKENS])
            state["layers"][num_tokens] = cost.layer_terms(num_tokens)
            state["have"][num_tokens] = True
        elif code != kernel.FLUSH:
            _raise(code, state, resolved, kernel, layout)
    _check_all_ended(state["seq"], layout)
    return RunRecords(
        requests=log,
        steps=steps,
        itl=itl,
        num_replicas=resolved.num_replicas,
        num_kv_blocks=resolved.memory.num_kv_blocks,
        kv_peak_used_blocks=[int(x) for x in state["rep"][:, layout.R_PEAK]],
        prefix_tokens=int(state["rep"][:, layout.R_PREFIX_TOKENS].sum()),
        prefix_hit_tokens=int(state["rep"][:, layout.R_HIT_TOKENS].sum()),
        end_s=float(state["clock"][0]),
        engine="compiled",
    )


_ARGUMENTS = [
    "seq",
    "rep",
    "glob",
    "par",
    "parf",
    "spec",
    "layers",
    "have",
    "last_s",
    "last_end",
    "grp_t",
    "grp_c",
    "plan",
    "heap_t",
    "heap_k",
    "rows",
    "itl_gap",
    "itl_count",
    "done",
    "gap_t",
    "gap_c",
    "clock",
    "arrival_s",
    "log_arrival",
    "log_first",
    "log_finish",
    "log_replica",
    "log_preemptions",
    "log_status",
    "pfx",
    "pinned",
    "homes",
    "think_s",
]


def _initial_state(
    resolved: ResolvedScenario, requests: RequestTable, log: RequestLog, layout: Any
) -> dict[str, np.ndarray]:
    """The kernel's arrays before the first event; rejected requests marked as the SimPy engine would."""
    sched, memory = resolved.scenario.scheduler, resolved.memory
    num, num_replicas, group = len(requests), resolved.num_replicas, sched.max_num_seqs + 1
    seq = np.zeros((num, layout.SEQ_COLUMNS), dtype=np.int64)
    seq[:, layout.S_PROMPT] = requests.input_tokens
    seq[:, layout.S_MAX_OUT] = requests.output_tokens
    seq[:, [layout.S_NEXT, layout.S_PREV, layout.S_REPLICA, layout.S_PREFIX]] = -1
    if requests.prefix_id is not None and requests.prefix_tokens is not None:
        seq[:, layout.S_PREFIX] = requests.prefix_id
        seq[:, layout.S_PREFIX_TOKENS] = requests.prefix_tokens
    seq[:, layout.S_NEXT_TURN] = -1 if requests.next_turn is None else requests.next_turn
    if requests.is_follow_up is not None:
        seq[:, layout.S_FOLLOW_UP] = requests.is_follow_up
    for i, reason in enumerate(rejection_reasons(resolved, requests)):
        if reason:
            seq[i, layout.S_STATE] = layout.REJECTED
            log.status[i] = STATUS_REJECTED
            log.reject_reason[i] = reason
    levels = sorted(set(requests.class_priorities))
    if len(levels) > 1:  # request classes: a request's level is its class priority's rank
        assert requests.class_id is not None
        rank = np.array([levels.index(p) for p in requests.class_priorities], dtype=np.int64)
        seq[:, layout.S_LEVEL] = rank[requests.class_id]
    if sched.router == "random":  # one draw per routed request, used in the order they are routed
        num_routed = int((seq[:, layout.S_STATE] != layout.REJECTED).sum())
        draws = stream(resolved.scenario.seed, "routing").integers(num_replicas, size=num_routed)
        seq[:num_routed, layout.S_ROUTE] = draws
    rep = np.zeros((num_replicas, layout.REP_COLUMNS), dtype=np.int64)
    for column in (layout.R_WAIT, layout.R_PREFILL, layout.R_DECODE):
        rep[:, column : column + 2] = -1
    rep[:, layout.R_FREE] = memory.num_kv_blocks
    rep[:, layout.R_SLEEPING] = 1
    rep[:, layout.R_LEVELS :] = -1
    rep[:, [layout.R_IDLE_HEAD, layout.R_IDLE_TAIL]] = -1
    pfx = np.zeros((num_replicas, _num_prefixes(requests), 4), dtype=np.int64)
    pfx[:, :, [layout.X_PREV, layout.X_NEXT]] = -1
    glob = np.zeros(layout.GLOB_COLUMNS, dtype=np.int64)
    glob[layout.G_PENDING] = -1
    longest = int((requests.input_tokens + requests.output_tokens).max()) if num else 1
    max_tokens = max(sched.max_num_batched_tokens, sched.chunk_size or 0) + longest + sched.max_num_seqs
    # events pending at once: one per replica (its step, wake-up or plan), the next arrival, and a
    # session's next turn during its think time (one per later turn at most)
    follow_ups = 0 if requests.is_follow_up is None else int(requests.is_follow_up.sum())
    heap = num_replicas + 2 + follow_ups
    assert isinstance(resolved.cost, CostModel)
    spec = resolved.cost.spec_terms()
    assert spec is not None
    return {
        "seq": seq,
        "rep": rep,
        "glob": glob,
        "par": _params(resolved, requests, layout),
        "parf": np.array(
            [
                sched.step_overhead_s,
                memory.kv_bytes_per_token_per_gpu / resolved.hardware.host_link_bandwidth_bytes_per_s,
            ]
        ),
        "spec": np.array([float(x) for x in spec]),
        "layers": np.zeros((max_tokens + 1, 4)),
        "have": np.zeros(max_tokens + 1, dtype=np.bool_),
        "last_s": np.full(num, np.nan),
        "last_end": np.zeros(num_replicas),
        "grp_t": np.zeros((num_replicas, group)),
        "grp_c": np.zeros((num_replicas, group), dtype=np.int64),
        "plan": np.zeros((num_replicas, group, 2), dtype=np.int64),
        "heap_t": np.zeros(heap),
        "heap_k": np.zeros((heap, 4), dtype=np.int64),
        "rows": np.empty((_ROWS_PER_FLUSH, 10)),  # buffers: written before read
        "itl_gap": np.empty(_GAPS_PER_FLUSH + 2 * group + 2),
        "itl_count": np.empty(_GAPS_PER_FLUSH + 2 * group + 2, dtype=np.int64),
        "done": np.zeros(2 * group + 2, dtype=np.int64),
        "gap_t": np.zeros(group),
        "gap_c": np.zeros(group, dtype=np.int64),
        "clock": np.zeros(1),
        "arrival_s": np.asarray(requests.arrival_s, dtype=np.float64),
        "log_arrival": log.arrival_s,
        "log_first": log.first_token_s,
        "log_finish": log.finish_s,
        "log_replica": log.replica,
        "log_preemptions": log.num_preemptions,
        "log_status": log.status,
        "pfx": pfx,
        "pinned": np.zeros((num_replicas, group + 1), dtype=np.int64),
        "homes": np.full(_num_prefixes(requests), -1, dtype=np.int64),
        "think_s": np.zeros(num)
        if requests.think_s is None
        else np.asarray(requests.think_s, dtype=np.float64),
    }


def _params(resolved: ResolvedScenario, requests: RequestTable, layout: Any) -> np.ndarray:
    sched, num_blocks = resolved.scenario.scheduler, resolved.memory.num_kv_blocks
    par = np.zeros(layout.PARAM_COLUMNS, dtype=np.int64)
    par[layout.P_BLOCK_SIZE] = resolved.memory.block_size
    par[layout.P_MAX_SEQS] = sched.max_num_seqs
    par[layout.P_MAX_BATCHED] = sched.max_num_batched_tokens
    par[layout.P_CHUNK] = sched.chunk_size or 0
    par[layout.P_POLICY] = _POLICIES.index(sched.policy)
    par[layout.P_ROUTER] = _ROUTERS.index(sched.router)
    par[layout.P_WATERMARK] = int(ADMISSION_WATERMARK_FRAC * num_blocks)
    par[layout.P_SWAP] = sched.preemption_mode == "swap"
    par[layout.P_NUM_BLOCKS] = num_blocks
    par[layout.P_CLOSED_LOOP] = requests.closed_loop_clients is not None
    par[layout.P_CLIENTS] = requests.closed_loop_clients or 0
    prioritized = len(set(requests.class_priorities)) > 1
    par[layout.P_PRIORITY_PREEMPTION] = prioritized and sched.priority_preemption
    par[layout.P_CACHING] = sched.prefix_caching and requests.prefix_id is not None
    return par


def _raise(
    code: int, state: dict[str, np.ndarray], resolved: ResolvedScenario, kernel: Any, layout: Any
) -> None:
    """The SimPy engine's error for what stopped the kernel."""
    glob, rep = state["glob"], state["rep"]
    if code == kernel.EMPTY_PLAN:
        r = int(glob[layout.G_ERROR_REPLICA])
        raise SimulatorError(
            f"replica {r}: policy {resolved.scenario.scheduler.policy!r} planned an empty step with "
            f"{rep[r, layout.R_WAIT + 2]} requests waiting and {rep[r, layout.R_FREE]} free KV blocks"
        )
    raise SimulatorError(
        f"the compiled engine stopped with code {code} (tokens {glob[layout.G_NEED_TOKENS]})"
    )


def _check_all_ended(seq: np.ndarray, layout: Any) -> None:
    state = seq[:, layout.S_STATE]
    left = np.flatnonzero((state != layout.FINISHED) & (state != layout.REJECTED))
    if len(left):
        i = int(left[0])
        raise SimulatorError(f"request {i} was left running on replica {seq[i, layout.S_REPLICA]}")


__all__ = [
    "COMPILED_AFTER_REQUESTS",
    "compiled_engine_blocker",
    "load_compiled_engine",
    "run_compiled",
    "use_compiled_engine",
]
