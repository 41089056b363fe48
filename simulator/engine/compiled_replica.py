"""A replica on arrays, for the compiled engine (L4): queues, KV blocks, decode set, policies, apply.

The twin of ``simulator.scheduling`` (``ReplicaState``, ``DecodeSet``, ``BlockManager``, the vllm, orca
and sarathi policies and ``apply_step``) without request classes or prefix caching, written for numba
over the arrays ``simulator.engine.compiled`` builds; ``simulator.engine.compiled_kernel`` runs the
event loop around it. Every operation here does what its Python twin does, in the same order, so both
engines give identical records (``tests/test_compiled_engine.py``).

Layout: ``seq[i]`` holds a request's counters (columns ``S_*``); ``rep[r]`` a replica's three linked
lists (waiting, prefilling, decoding: head, tail, length, threaded through ``seq``'s next/prev columns),
its KV and decode-set counters and its step in flight (``R_*``); ``grp[r]`` the members that joined its
decode set since its last decode step, by the time of their last token; ``plan[r]`` the (request, tokens)
prefills of its step in flight; ``glob`` and ``par`` the run's counters (``G_*``) and parameters (``P_*``).

numba's on-disk cache is keyed on each compiled function's own file: code compiled into the kernel from
this module or ``simulator.spec_pricing`` would go stale when they change alone, so the kernel records
their digest (``compiled_kernel.SOURCES_DIGEST``, checked by ``tests/test_compiled_engine.py``).
"""

from __future__ import annotations

import numba

# seq columns (int64); S_ROUTE: the random router's draw for the request, drawn beforehand
S_PROMPT, S_MAX_OUT, S_OUT, S_COMPUTED, S_BLOCKS, S_STATE, S_NEXT, S_PREV, S_JOIN, S_SWAPPED = range(10)
S_REPLICA, S_ROUTE, S_LEVEL = 10, 11, 12  # S_LEVEL: its class's rank by priority (0: most urgent)
SEQ_COLUMNS = 13
# S_STATE values
NEW, WAITING, PREFILLING, DECODING, FINISHED, REJECTED = range(6)
# rep columns (int64): three linked lists (head, tail, length), KV, the decode set, the step in flight
R_WAIT, R_PREFILL, R_DECODE = 0, 3, 6  # + 0 head, + 1 tail, + 2 length
R_FREE, R_PEAK, R_KV_TOKENS, R_STEP, R_CONTINUING, R_NUM_GROUPS, R_SLEEPING = range(9, 16)
R_NUM_PLANNED, R_PLAN_DECODE, R_PLAN_KV, R_SWAP_TOKENS, R_PREEMPTED = range(16, 21)
R_LEVELS = 21  # + 2 level, + 2 level + 1: the first and last waiting request of each priority level
MAX_LEVELS = 8
REP_COLUMNS = R_LEVELS + 2 * MAX_LEVELS
# glob (int64)
G_EID, G_NEXT_REQUEST, G_COUNTER, G_HEAP, G_ROWS, G_ITL, G_PENDING, G_NEED_TOKENS, G_STARTED = range(9)
G_ERROR_REPLICA = 9
GLOB_COLUMNS = 10
# params (int64)
P_BLOCK_SIZE, P_MAX_SEQS, P_MAX_BATCHED, P_CHUNK, P_POLICY, P_ROUTER, P_WATERMARK = range(7)
P_SWAP, P_NUM_BLOCKS, P_CLOSED_LOOP, P_CLIENTS, P_PRIORITY_PREEMPTION = range(7, 12)
PARAM_COLUMNS = 12


@numba.njit(cache=True)
def _link_back(seq, rep, r, at, i):
    """Append request ``i`` to replica ``r``'s list at column ``at`` (R_WAIT, R_PREFILL or R_DECODE)."""
    tail = rep[r, at + 1]
    seq[i, S_PREV], seq[i, S_NEXT] = tail, -1
    if tail >= 0:
        seq[tail, S_NEXT] = i
    else:
        rep[r, at] = i
    rep[r, at + 1] = i
    rep[r, at + 2] += 1


@numba.njit(cache=True)
def _link_front(seq, rep, r, at, i):
    head = rep[r, at]
    seq[i, S_PREV], seq[i, S_NEXT] = -1, head
    if head >= 0:
        seq[head, S_PREV] = i
    else:
        rep[r, at + 1] = i
    rep[r, at] = i
    rep[r, at + 2] += 1


@numba.njit(cache=True)
def _unlink(seq, rep, r, at, i):
    prev, nxt = seq[i, S_PREV], seq[i, S_NEXT]
    if prev >= 0:
        seq[prev, S_NEXT] = nxt
    else:
        rep[r, at] = nxt
    if nxt >= 0:
        seq[nxt, S_PREV] = prev
    else:
        rep[r, at + 1] = prev
    rep[r, at + 2] -= 1


@numba.njit(cache=True)
def _insert_after(seq, rep, r, at, prev, i):
    """Insert request ``i`` into a list after ``prev`` (-1: at its head)."""
    if prev < 0:
        _link_front(seq, rep, r, at, i)
        return
    nxt = seq[prev, S_NEXT]
    seq[i, S_PREV], seq[i, S_NEXT] = prev, nxt
    seq[prev, S_NEXT] = i
    if nxt >= 0:
        seq[nxt, S_PREV] = i
    else:
        rep[r, at + 1] = i
    rep[r, at + 2] += 1


@numba.njit(cache=True)
def _last_more_urgent(rep, r, level):
    """The last waiting request of the nearest non-empty more urgent level (-1: none)."""
    for more_urgent in range(level - 1, -1, -1):
        if rep[r, R_LEVELS + 2 * more_urgent + 1] >= 0:
            return rep[r, R_LEVELS + 2 * more_urgent + 1]
    return -1


@numba.njit(cache=True)
def _wait_back(seq, rep, r, i):
    """``WaitingQueue.append``: to the back of its priority level."""
    at = R_LEVELS + 2 * seq[i, S_LEVEL]
    tail = rep[r, at + 1]
    prev = tail if tail >= 0 else _last_more_urgent(rep, r, seq[i, S_LEVEL])
    _insert_after(seq, rep, r, R_WAIT, prev, i)
    rep[r, at + 1] = i
    if rep[r, at] < 0:
        rep[r, at] = i


@numba.njit(cache=True)
def _wait_front(seq, rep, r, i):
    """``WaitingQueue.appendleft``: to the front of its priority level (a preempted request)."""
    at = R_LEVELS + 2 * seq[i, S_LEVEL]
    head = rep[r, at]
    prev = seq[head, S_PREV] if head >= 0 else _last_more_urgent(rep, r, seq[i, S_LEVEL])
    _insert_after(seq, rep, r, R_WAIT, prev, i)
    rep[r, at] = i
    if rep[r, at + 1] < 0:
        rep[r, at + 1] = i


@numba.njit(cache=True)
def _wait_pop(seq, rep, r):
    """``WaitingQueue.popleft``: the head, the first of the most urgent level that has requests."""
    i = rep[r, R_WAIT]
    at = R_LEVELS + 2 * seq[i, S_LEVEL]
    if rep[r, at + 1] == i:
        rep[r, at] = rep[r, at + 1] = -1
    else:
        rep[r, at] = seq[i, S_NEXT]
    _unlink(seq, rep, r, R_WAIT, i)
    return i


@numba.njit(cache=True)
def _blocks_for(num_tokens, block_size):
    return -(-num_tokens // block_size)


@numba.njit(cache=True)
def _take(rep, par, r, num_blocks):
    """``BlockManager.allocate``: move blocks from free to used, keeping the peak."""
    rep[r, R_FREE] -= num_blocks
    used = par[P_NUM_BLOCKS] - rep[r, R_FREE]
    if used > rep[r, R_PEAK]:
        rep[r, R_PEAK] = used


@numba.njit(cache=True)
def _itl(glob, itl_gap, itl_count, gap_s, count):
    n = glob[G_ITL]
    itl_gap[n] = gap_s
    itl_count[n] = count
    glob[G_ITL] = n + 1


@numba.njit(cache=True)
def _decode_need(seq, rep, r, block_size):
    """KV blocks the decode set needs, together, for its next step."""
    need = 0
    i = rep[r, R_DECODE]
    while i >= 0:
        need += _blocks_for(seq[i, S_PROMPT] + seq[i, S_OUT], block_size) - seq[i, S_BLOCKS]
        i = seq[i, S_NEXT]
    return need


@numba.njit(cache=True)
def _leave_decode(seq, rep, last_s, grp_t, grp_c, r, i):
    """``DecodeSet.remove``: out of the set; a member that joined since the last step leaves its group."""
    _unlink(seq, rep, r, R_DECODE, i)
    rep[r, R_KV_TOKENS] -= seq[i, S_PROMPT] + seq[i, S_OUT]
    if seq[i, S_JOIN] != rep[r, R_STEP]:
        rep[r, R_CONTINUING] -= 1
        return
    n = rep[r, R_NUM_GROUPS]
    for g in range(n):
        if grp_t[r, g] == last_s[i]:
            grp_c[r, g] -= 1
            if grp_c[r, g] == 0:
                for h in range(g, n - 1):
                    grp_t[r, h], grp_c[r, h] = grp_t[r, h + 1], grp_c[r, h + 1]
                rep[r, R_NUM_GROUPS] = n - 1
            return


@numba.njit(cache=True)
def _join_decode(seq, rep, last_s, grp_t, grp_c, r, i):
    """``DecodeSet.add``: joins last (the youngest), in the group of its last token's time."""
    seq[i, S_JOIN] = rep[r, R_STEP]
    seq[i, S_STATE] = DECODING
    _link_back(seq, rep, r, R_DECODE, i)
    rep[r, R_KV_TOKENS] += seq[i, S_PROMPT] + seq[i, S_OUT]
    n = rep[r, R_NUM_GROUPS]
    for g in range(n):
        if grp_t[r, g] == last_s[i]:
            grp_c[r, g] += 1
            return
    grp_t[r, n], grp_c[r, n] = last_s[i], 1
    rep[r, R_NUM_GROUPS] = n + 1


@numba.njit(cache=True)
def _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r, i):
    """``ReplicaState._to_front_of_queue``: decoder ``i`` to the front of its level, its blocks freed."""
    _leave_decode(seq, rep, last_s, grp_t, grp_c, r, i)
    rep[r, R_FREE] += seq[i, S_BLOCKS]
    seq[i, S_BLOCKS] = 0
    if par[P_SWAP]:
        seq[i, S_SWAPPED] = seq[i, S_COMPUTED]
        rep[r, R_SWAP_TOKENS] += seq[i, S_COMPUTED]
    else:
        seq[i, S_COMPUTED] = 0
    log_preemptions[i] += 1
    seq[i, S_STATE] = WAITING
    _wait_front(seq, rep, r, i)
    rep[r, R_PREEMPTED] += 1


@numba.njit(cache=True)
def _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r):
    """Priority classes: preempt the youngest of the least urgent decoders, less urgent than the head
    of the queue, while the head lacks blocks (``_make_room_for_urgent``)."""
    if not par[P_PRIORITY_PREEMPTION] or not rep[r, R_WAIT + 2] or not rep[r, R_DECODE + 2]:
        return
    head = rep[r, R_WAIT]
    urgency = seq[head, S_LEVEL]
    need = _blocks_for(seq[head, S_PROMPT] + seq[head, S_OUT], par[P_BLOCK_SIZE]) - seq[head, S_BLOCKS]
    need = max(0, need) + par[P_WATERMARK]
    while need > rep[r, R_FREE]:
        victim, i = -1, rep[r, R_DECODE + 1]
        while i >= 0:  # youngest first; a tie keeps the younger
            if seq[i, S_LEVEL] > urgency and (victim < 0 or seq[i, S_LEVEL] > seq[victim, S_LEVEL]):
                victim = i
            i = seq[i, S_PREV]
        if victim < 0:
            return
        _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r, victim)


@numba.njit(cache=True)
def _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r):
    """Every member decodes one token; preempt the youngest while blocks are short."""
    block_size = par[P_BLOCK_SIZE]
    while rep[r, R_DECODE + 2] and _decode_need(seq, rep, r, block_size) > rep[r, R_FREE]:
        _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r, rep[r, R_DECODE + 1])
    if not rep[r, R_DECODE + 2]:
        return
    _take(rep, par, r, _decode_need(seq, rep, r, block_size))
    i = rep[r, R_DECODE]
    while i >= 0:
        seq[i, S_BLOCKS] = _blocks_for(seq[i, S_PROMPT] + seq[i, S_OUT], block_size)
        i = seq[i, S_NEXT]
    rep[r, R_PLAN_DECODE] = rep[r, R_DECODE + 2]
    rep[r, R_PLAN_KV] = rep[r, R_KV_TOKENS]


@numba.njit(cache=True)
def _plan_prefill(seq, rep, plan, r, i, num_tokens):
    n = rep[r, R_NUM_PLANNED]
    plan[r, n, 0], plan[r, n, 1] = i, num_tokens
    rep[r, R_NUM_PLANNED] = n + 1


@numba.njit(cache=True)
def _admit_waiting(seq, rep, par, plan, r, budget, chunked, thrashing, long_needs_idle):
    """``_admit_waiting``: FCFS within the budget, sequence slots and KV blocks (watermark kept)."""
    if thrashing:
        return
    block_size, watermark = par[P_BLOCK_SIZE], par[P_WATERMARK]
    num_seqs = rep[r, R_PREFILL + 2] + rep[r, R_DECODE + 2]
    while rep[r, R_WAIT + 2] and num_seqs < par[P_MAX_SEQS] and budget > 0:
        i = rep[r, R_WAIT]
        num_new = seq[i, S_PROMPT] + seq[i, S_OUT] - seq[i, S_COMPUTED]
        if chunked:
            num_new = min(num_new, budget)
        elif num_new > budget and (rep[r, R_NUM_PLANNED] or (long_needs_idle and num_seqs)):
            break  # a prompt over the budget runs alone
        need = max(0, _blocks_for(seq[i, S_COMPUTED] + num_new, block_size) - seq[i, S_BLOCKS])
        if need + (watermark if num_seqs else 0) > rep[r, R_FREE]:
            break
        _take(rep, par, r, need)
        seq[i, S_BLOCKS] += need
        if seq[i, S_SWAPPED]:
            rep[r, R_SWAP_TOKENS] += seq[i, S_SWAPPED]
            seq[i, S_SWAPPED] = 0
        seq[i, S_STATE] = PREFILLING
        _wait_pop(seq, rep, r)
        _link_back(seq, rep, r, R_PREFILL, i)
        _plan_prefill(seq, rep, plan, r, i, num_new)
        budget -= num_new
        num_seqs += 1


@numba.njit(cache=True)
def _continue_prefills(seq, rep, par, plan, r, budget):
    """sarathi: prompts already being prefilled continue with a chunk each; returns the budget left."""
    block_size = par[P_BLOCK_SIZE]
    i = rep[r, R_PREFILL]
    while i >= 0 and budget > 0:
        chunk = min(seq[i, S_PROMPT] + seq[i, S_OUT] - seq[i, S_COMPUTED], budget)
        need = max(0, _blocks_for(seq[i, S_COMPUTED] + chunk, block_size) - seq[i, S_BLOCKS])
        if need > rep[r, R_FREE]:
            break
        _take(rep, par, r, need)
        seq[i, S_BLOCKS] += need
        _plan_prefill(seq, rep, plan, r, i, chunk)
        budget -= chunk
        i = seq[i, S_NEXT]
    return budget


@numba.njit(cache=True)
def _policy(seq, rep, par, last_s, grp_t, grp_c, plan, log_preemptions, r):
    """The replica's next plan into ``rep[r]``'s plan columns and ``plan[r]``."""
    rep[r, R_NUM_PLANNED] = rep[r, R_PLAN_DECODE] = rep[r, R_PLAN_KV] = rep[r, R_PREEMPTED] = 0
    policy, max_batched = par[P_POLICY], par[P_MAX_BATCHED]
    if policy == 0:  # vllm: prefills first, alone; else every member decodes
        if rep[r, R_WAIT + 2]:
            _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r)
            _admit_waiting(seq, rep, par, plan, r, max_batched, False, False, False)
            if rep[r, R_NUM_PLANNED]:
                return
        _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r)
        return
    _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r)
    num_urgent_victims = rep[r, R_PREEMPTED]
    _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, r)
    thrashing = rep[r, R_PREEMPTED] > num_urgent_victims
    if policy == 1:  # orca: whole prompts in what the decodes leave of the budget
        budget = max_batched - rep[r, R_PLAN_DECODE]
        _admit_waiting(seq, rep, par, plan, r, budget, False, thrashing, True)
        return
    budget = (par[P_CHUNK] or max_batched) - rep[r, R_PLAN_DECODE]  # sarathi: chunks
    budget = _continue_prefills(seq, rep, par, plan, r, budget)
    _admit_waiting(seq, rep, par, plan, r, budget, True, thrashing, True)


@numba.njit(cache=True)
def _advance_decode(seq, rep, glob, last_s, last_end, grp_t, grp_c, itl_gap, itl_count, done, r, now):
    """``DecodeSet.advance``: every member computed and sampled a token at ``now``; records the gaps
    and puts finishers (out of the set, blocks freed) into ``done``; returns how many."""
    if rep[r, R_CONTINUING]:
        _itl(glob, itl_gap, itl_count, now - last_end[r], rep[r, R_CONTINUING])
    for g in range(rep[r, R_NUM_GROUPS]):
        _itl(glob, itl_gap, itl_count, now - grp_t[r, g], grp_c[r, g])
    rep[r, R_NUM_GROUPS] = 0
    rep[r, R_STEP] += 1
    last_end[r] = now
    rep[r, R_CONTINUING] = rep[r, R_DECODE + 2]
    rep[r, R_KV_TOKENS] += rep[r, R_DECODE + 2]
    num_done = 0
    i = rep[r, R_DECODE]
    while i >= 0:
        nxt = seq[i, S_NEXT]
        seq[i, S_OUT] += 1
        seq[i, S_COMPUTED] += 1
        last_s[i] = now
        if seq[i, S_OUT] >= seq[i, S_MAX_OUT]:
            _leave_decode(seq, rep, last_s, grp_t, grp_c, r, i)
            done[num_done] = i
            num_done += 1
        i = nxt
    return num_done


@numba.njit(cache=True)
def _apply_step(
    seq,
    rep,
    glob,
    last_s,
    last_end,
    grp_t,
    grp_c,
    plan,
    itl_gap,
    itl_count,
    done,
    gap_t,
    gap_c,
    log_first,
    r,
    now,
):
    """``apply_step``: advance the planned sequences; finishers (blocks freed) into ``done``, in the
    order the engine records them; returns how many."""
    num_done = 0
    if rep[r, R_PLAN_DECODE]:
        num_done = _advance_decode(
            seq, rep, glob, last_s, last_end, grp_t, grp_c, itl_gap, itl_count, done, r, now
        )
    num_gaps = 0
    for k in range(rep[r, R_NUM_PLANNED]):
        i, chunk = plan[r, k, 0], plan[r, k, 1]
        seq[i, S_COMPUTED] += chunk
        if seq[i, S_COMPUTED] < seq[i, S_PROMPT] + seq[i, S_OUT]:
            continue
        _unlink(seq, rep, r, R_PREFILL, i)
        if seq[i, S_OUT] == 0:
            log_first[i] = now
        else:  # a recomputed sequence samples its next token: a gap since its last one
            g = 0
            while g < num_gaps and gap_t[g] != last_s[i]:
                g += 1
            if g == num_gaps:
                gap_t[g], gap_c[g] = last_s[i], 0
                num_gaps += 1
            gap_c[g] += 1
        seq[i, S_OUT] += 1
        last_s[i] = now
        if seq[i, S_OUT] >= seq[i, S_MAX_OUT]:
            done[num_done] = i
            num_done += 1
        else:
            _join_decode(seq, rep, last_s, grp_t, grp_c, r, i)
    for g in range(num_gaps):
        _itl(glob, itl_gap, itl_count, now - gap_t[g], gap_c[g])
    for k in range(num_done):
        i = done[k]
        seq[i, S_STATE] = FINISHED
        rep[r, R_FREE] += seq[i, S_BLOCKS]
        seq[i, S_BLOCKS] = 0
    return num_done
