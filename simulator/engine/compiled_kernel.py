"""The compiled engine's event loop (L4): a whole simulation in numba, imported on first use.

It plays the step-by-step SimPy engine (``simulator.engine.loop``) event for event, on arrays: the
arrival process (or the closed loop's clients), the router, and each replica's loop of plan, price,
wait and apply (``simulator.engine.compiled_replica``), pricing steps with the cost model's spec-only
formulas (``simulator.spec_pricing``). Events are ordered as SimPy orders them (time, priority, then
the order they were scheduled in), with a replica's plan after every ordinary event of the same instant
(``simulator.engine.clock.Late``), so both engines give identical records
(``tests/test_compiled_engine.py``).

``run`` returns to Python (``simulator.engine.compiled``) when its log buffers fill up, when a step
needs the layers' work at a token count not in the table yet (``CostModel.layer_terms``), and when it
is done; all its state lives in the arrays it is given (``heap_t``/``heap_k``: the event queue), so
the next call carries on where the last stopped.
"""

from __future__ import annotations

import numba
import numpy as np

from simulator.engine.compiled_replica import _apply_step, _policy
from simulator.engine.compiled_state import (
    G_COUNTER,
    G_DRAWS,
    G_ERROR_REPLICA,
    G_HEAP,
    G_ITL,
    G_NEED_TOKENS,
    G_NEXT_REQUEST,
    G_PENDING,
    G_ROWS,
    G_STARTED,
    P_CLIENTS,
    P_CLOSED_LOOP,
    P_NUM_BLOCKS,
    P_ROUTER,
    R_DECODE,
    R_FREE,
    R_NUM_PLANNED,
    R_PLAN_DECODE,
    R_PLAN_KV,
    R_PREEMPTED,
    R_PREFILL,
    R_SLEEPING,
    R_SWAP_TOKENS,
    R_WAIT,
    REJECTED,
    S_COMPUTED,
    S_FOLLOW_UP,
    S_NEXT_TURN,
    S_OUT,
    S_PREFIX,
    S_PROMPT,
    S_REPLICA,
    S_ROUTE,
    S_STATE,
    WAITING,
    _pop,
    _push,
    _wait_back,
)
from simulator.spec_pricing import attention_terms, forward_tail_terms

SOURCES_DIGEST = "ca1d99152f756b0ebc1ed5ecf892d2b2f185440bdc6abefbdf2f8cf38204bf41"
"""sha256 of ``compiled_state.py``, ``compiled_prefix.py``, ``compiled_replica.py`` and ``spec_pricing.py``
(``compiled.KERNEL_SOURCES``), whose code numba compiles into ``run``, the one function it caches (its
callees are not cached on their own: a cached callee would go stale as well). numba keys the cache on
``run``'s file, so a change there must change this file too (``tests/test_compiled_engine.py``)."""

attention_jit = numba.njit(cache=False)(attention_terms)  # compiled into the cached run
forward_tail_jit = numba.njit(cache=False)(forward_tail_terms)

# events: kinds and SimPy priorities
K_ARRIVAL, K_STEP, K_WAKE, K_LATE, K_TURN = range(5)  # K_TURN: a session's next turn is due
NORMAL, LATE = 1, 2
# return codes
DONE, FLUSH, NEED_LAYERS, EMPTY_PLAN, TOO_MANY_TOKENS = range(5)


@numba.njit
def _outstanding(rep, r):
    return rep[r, R_WAIT + 2] + rep[r, R_PREFILL + 2] + rep[r, R_DECODE + 2]


@numba.njit
def _least_loaded(rep, glob, par, by_kv):
    """The replica with the fewest outstanding requests (or the smallest KV fraction in use); ties go
    round robin (``routers._least_loaded``)."""
    num_replicas = rep.shape[0]
    loads = np.empty(num_replicas)
    for r in range(num_replicas):
        if by_kv:
            loads[r] = (par[P_NUM_BLOCKS] - rep[r, R_FREE]) / par[P_NUM_BLOCKS]
        else:
            loads[r] = _outstanding(rep, r)
    low = loads.min()
    num_tied = 0
    for r in range(num_replicas):
        if loads[r] == low:
            num_tied += 1
    pick = glob[G_COUNTER] % num_tied
    glob[G_COUNTER] += 1
    for r in range(num_replicas):
        if loads[r] == low:
            if pick == 0:
                return r
            pick -= 1
    return -1


@numba.njit
def _route(seq, rep, glob, par, homes, i):
    """The router's pick for request ``i`` among all replicas (``simulator.scheduling.routers``, in the
    order of ``compiled.ROUTERS``); the random router's draws were made beforehand, one per request in
    the order requests are routed (``S_ROUTE``: sessions' later turns are routed when issued)."""
    router = par[P_ROUTER]
    if router == 0:
        index = glob[G_COUNTER] % rep.shape[0]
        glob[G_COUNTER] += 1
        return index
    if router == 1 or router == 2:
        return _least_loaded(rep, glob, par, router == 2)
    if router == 3:
        glob[G_DRAWS] += 1
        return seq[glob[G_DRAWS] - 1, S_ROUTE]
    p = seq[i, S_PREFIX]  # prefix_affinity: where the prefix went before, unless that one is overloaded
    if p >= 0 and homes[p] >= 0:
        low = _outstanding(rep, 0)
        for r in range(1, rep.shape[0]):
            low = min(low, _outstanding(rep, r))
        if _outstanding(rep, homes[p]) <= 2 * low + 4:
            return homes[p]
    index = _least_loaded(rep, glob, par, False)
    if p >= 0:
        homes[p] = index
    return index


@numba.njit
def _submit(i, now, seq, rep, glob, par, heap_t, heap_k, traffic):
    """Issue request ``i`` now (``_Cluster.submit``): a rejected one (its status set beforehand) stops
    here, and its session's next turn is issued at once (its later turns are longer still)."""
    _, log_arrival, homes, _ = traffic
    if par[P_CLOSED_LOOP]:
        log_arrival[i] = now
    if seq[i, S_STATE] == REJECTED:
        if seq[i, S_NEXT_TURN] >= 0:
            _push(glob, heap_t, heap_k, now + 0.0, NORMAL, K_TURN, seq[i, S_NEXT_TURN])
        return
    r = _route(seq, rep, glob, par, homes, i)
    seq[i, S_REPLICA] = r
    seq[i, S_STATE] = WAITING
    _wait_back(seq, rep, r, i)
    if rep[r, R_SLEEPING]:  # wake it: it resumes in an event of its own, as a SimPy process does
        rep[r, R_SLEEPING] = 0
        _push(glob, heap_t, heap_k, now, NORMAL, K_WAKE, r)


@numba.njit
def _arrivals(now, seq, rep, glob, par, heap_t, heap_k, traffic):
    """The open loop's arrival process from its next request: submit those due, wait for the next (a
    session's later turns are issued when the turn before them ends)."""
    arrival_s = traffic[0]
    while glob[G_NEXT_REQUEST] < seq.shape[0]:
        i = glob[G_NEXT_REQUEST]
        if seq[i, S_FOLLOW_UP]:
            glob[G_NEXT_REQUEST] += 1
            continue
        if arrival_s[i] > now:
            _push(glob, heap_t, heap_k, now + (arrival_s[i] - now), NORMAL, K_ARRIVAL, -1)
            return
        _submit(i, now, seq, rep, glob, par, heap_t, heap_k, traffic)
        glob[G_NEXT_REQUEST] += 1


@numba.njit
def _issue_next(now, seq, rep, glob, par, heap_t, heap_k, traffic):
    """Closed loop: a client sends its next request (and again at once while they are rejected)."""
    while glob[G_NEXT_REQUEST] < seq.shape[0]:
        i = glob[G_NEXT_REQUEST]
        glob[G_NEXT_REQUEST] += 1
        _submit(i, now, seq, rep, glob, par, heap_t, heap_k, traffic)
        if seq[i, S_STATE] != REJECTED:
            return


@numba.njit
def _price(seq, rep, glob, par, parf, spec, layers, have, plan, rows, heap_t, heap_k, r, now):
    """``CostModel.step`` of the planned step (spec-only), its log row, and its end event; NEED_LAYERS
    (the plan kept) when the layers' work at its token count is not in the table yet."""
    pairs = 0.0
    num_prefill, prefill_kv, num_decode = 0, 0, rep[r, R_PLAN_DECODE]
    num_logits = num_decode
    for k in range(rep[r, R_NUM_PLANNED]):
        i, chunk = plan[r, k, 0], plan[r, k, 1]
        past = seq[i, S_COMPUTED]
        num_prefill += chunk
        pairs += chunk * past + chunk * (chunk + 1) / 2
        prefill_kv += past + chunk
        if past + chunk == seq[i, S_PROMPT] + seq[i, S_OUT]:
            num_logits += 1
    num_tokens = num_prefill + num_decode
    if num_tokens >= have.shape[0]:
        glob[G_NEED_TOKENS] = num_tokens
        return TOO_MANY_TOKENS
    if not have[num_tokens]:
        glob[G_PENDING], glob[G_NEED_TOKENS] = r, num_tokens
        return NEED_LAYERS
    glob[G_PENDING] = -1
    c, m, f, b = layers[num_tokens, 0], layers[num_tokens, 1], layers[num_tokens, 2], layers[num_tokens, 3]
    if num_prefill > 0:
        t, f1, b1 = attention_jit(
            pairs,
            num_prefill,
            prefill_kv,
            1.0,
            spec[0],
            spec[1],
            spec[2],
            spec[6],
            spec[7],
            spec[8],
            int(spec[9]),
        )
        c, f, b = c + t, f + f1, b + b1
    c, m, f, b = forward_tail_jit(
        c,
        m,
        f,
        b,
        num_tokens,
        num_logits * 1.0,
        spec[10],
        spec[11],
        spec[8],
        spec[12],
        spec[13],
        spec[14],
        spec[15],
        spec[16] != 0.0,
        spec[17],
        spec[18],
    )
    if num_decode > 0:
        kv = rep[r, R_PLAN_KV]
        t, f1, b1 = attention_jit(
            kv, num_decode, kv, 1.0, spec[3], spec[4], spec[5], spec[6], spec[7], spec[8], int(spec[9])
        )
        c, f, b = c + t, f + f1, b + b1
    duration_s = (c + m) + parf[0]
    if rep[r, R_SWAP_TOKENS]:  # KV copied to or from host memory, not overlapped with the step
        duration_s += rep[r, R_SWAP_TOKENS] * parf[1]
        rep[r, R_SWAP_TOKENS] = 0
    tp = spec[19]
    n = glob[G_ROWS]
    rows[n, 0], rows[n, 1], rows[n, 2] = r, now, duration_s
    rows[n, 3] = rep[r, R_NUM_PLANNED] + num_decode
    rows[n, 4], rows[n, 5], rows[n, 6] = num_prefill, num_decode, rep[r, R_PREEMPTED]
    rows[n, 7] = par[P_NUM_BLOCKS] - rep[r, R_FREE]
    rows[n, 8], rows[n, 9] = f * tp, b * tp
    glob[G_ROWS] = n + 1
    _push(glob, heap_t, heap_k, now + duration_s, NORMAL, K_STEP, r)
    return DONE


@numba.njit(cache=True)
def run(
    seq,
    rep,
    glob,
    par,
    parf,
    spec,
    layers,
    have,
    last_s,
    last_end,
    grp_t,
    grp_c,
    plan,
    heap_t,
    heap_k,
    rows,
    itl_gap,
    itl_count,
    done,
    gap_t,
    gap_c,
    clock,
    arrival_s,
    log_arrival,
    log_first,
    log_finish,
    log_replica,
    log_preemptions,
    log_status,
    pfx,
    pinned,
    homes,
    think_s,
):
    """Play events until the queue is empty (DONE) or Python is needed (another return code)."""
    dset, itl = (last_s, last_end, grp_t, grp_c), (itl_gap, itl_count)
    scratch, cache = (done, gap_t, gap_c), (pfx, pinned)
    traffic = (arrival_s, log_arrival, homes, think_s)
    if not glob[G_STARTED]:
        glob[G_STARTED] = 1
        if par[P_CLOSED_LOOP]:  # clients send before the replica processes start, which then plan
            rep[:, R_SLEEPING] = 0
            for _ in range(min(par[P_CLIENTS], seq.shape[0])):
                _issue_next(0.0, seq, rep, glob, par, heap_t, heap_k, traffic)
            for r in range(rep.shape[0]):
                if rep[r, R_WAIT + 2]:
                    _push(glob, heap_t, heap_k, 0.0, LATE, K_LATE, r)
                else:
                    rep[r, R_SLEEPING] = 1
        else:
            _arrivals(0.0, seq, rep, glob, par, heap_t, heap_k, traffic)
    max_itl = 2 * plan.shape[1] + 2  # gaps one apply may record
    while True:
        r = glob[G_PENDING]
        if r >= 0:  # a plan waits for its price (the layer table was short)
            code = _price(
                seq, rep, glob, par, parf, spec, layers, have, plan, rows, heap_t, heap_k, r, clock[0]
            )
            if code != DONE:
                return code
        if glob[G_ROWS] + 1 > rows.shape[0] or glob[G_ITL] + max_itl > itl_gap.shape[0]:
            return FLUSH
        if glob[G_HEAP] == 0:
            return DONE
        slot = _pop(glob, heap_t, heap_k)
        now, kind, r = heap_t[slot], heap_k[slot, 2], heap_k[slot, 3]
        clock[0] = now
        if kind == K_ARRIVAL:
            _submit(glob[G_NEXT_REQUEST], now, seq, rep, glob, par, heap_t, heap_k, traffic)
            glob[G_NEXT_REQUEST] += 1
            _arrivals(now, seq, rep, glob, par, heap_t, heap_k, traffic)
            continue
        if kind == K_TURN:  # a session's next turn (its request id where a replica's index goes)
            log_arrival[r] = now
            _submit(r, now, seq, rep, glob, par, heap_t, heap_k, traffic)
            continue
        if kind == K_STEP:
            num_done = _apply_step(seq, rep, glob, par, dset, plan, itl, scratch, cache, log_first, r, now)
            for k in range(num_done):  # _Cluster.finish
                i = done[k]
                log_finish[i], log_replica[i], log_status[i] = now, r, 1
                if par[P_CLOSED_LOOP]:
                    _issue_next(now, seq, rep, glob, par, heap_t, heap_k, traffic)
                turn = seq[i, S_NEXT_TURN]
                if turn >= 0:  # the session's next turn, after its think time
                    _push(glob, heap_t, heap_k, now + think_s[turn], NORMAL, K_TURN, turn)
            if not (rep[r, R_WAIT + 2] or rep[r, R_PREFILL + 2] or rep[r, R_DECODE + 2]):
                rep[r, R_SLEEPING] = 1
                continue
        if kind != K_LATE and glob[G_HEAP] and heap_t[0] <= now:  # others are due now: plan after them
            _push(glob, heap_t, heap_k, now, LATE, K_LATE, r)
            continue
        _policy(seq, rep, par, last_s, grp_t, grp_c, plan, log_preemptions, cache, r)
        if not rep[r, R_NUM_PLANNED] and not rep[r, R_PLAN_DECODE]:
            glob[G_ERROR_REPLICA] = r
            return EMPTY_PLAN
        glob[G_PENDING] = r
