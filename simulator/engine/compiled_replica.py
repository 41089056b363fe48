"""A replica on arrays, for the compiled engine (L4): decode set, policies, apply.

The twin of ``simulator.scheduling`` (``DecodeSet``, the vllm, orca and sarathi policies with priority
preemption, ``apply_step``), written for numba over the arrays ``simulator.engine.compiled`` builds
(layout and basic operations: ``simulator.engine.compiled_state``); ``compiled_kernel`` runs the event
loop around it. Every operation does what its Python twin does, in the same order, so both engines give
identical records (``tests/test_compiled_engine.py``). ``grp[r]`` holds the members that joined a
replica's decode set since its last decode step, by the time of their last token; ``plan[r]`` the
(request, tokens) prefills of its step in flight. ``dset`` = (last token times, last decode step end,
group times, group counts); ``cache`` = (``pfx``, ``pinned``).
"""

from __future__ import annotations

import numba

from simulator.engine.compiled_prefix import (
    _allocate,
    _cache_prefix,
    _has_free_blocks,
    _release,
    _unpin,
    _unpin_waiting,
    _use_cached_prefix,
)
from simulator.engine.compiled_state import (
    DECODING,
    FINISHED,
    P_BLOCK_SIZE,
    P_CACHING,
    P_CHUNK,
    P_MAX_BATCHED,
    P_MAX_SEQS,
    P_POLICY,
    P_PRIORITY_PREEMPTION,
    P_SWAP,
    P_WATERMARK,
    PREFILLING,
    R_CONTINUING,
    R_DECODE,
    R_FREE,
    R_HIT_TOKENS,
    R_KV_TOKENS,
    R_NUM_GROUPS,
    R_NUM_PLANNED,
    R_PLAN_DECODE,
    R_PLAN_KV,
    R_PREEMPTED,
    R_PREFILL,
    R_PREFIX_TOKENS,
    R_STEP,
    R_SWAP_TOKENS,
    R_WAIT,
    S_BLOCKS,
    S_COMPUTED,
    S_JOIN,
    S_LEVEL,
    S_MAX_OUT,
    S_NEXT,
    S_OUT,
    S_PREFIX,
    S_PREFIX_TOKENS,
    S_PREV,
    S_PROMPT,
    S_SHARED,
    S_STATE,
    S_SWAPPED,
    WAITING,
    _blocks_for,
    _itl,
    _link_back,
    _unlink,
    _wait_front,
    _wait_pop,
)


@numba.njit(inline="always")
def _decode_need(seq, rep, r, block_size):
    """KV blocks the decode set needs, together, for its next step."""
    need = 0
    i = rep[r, R_DECODE]
    while i >= 0:
        held = seq[i, S_BLOCKS] + seq[i, S_SHARED]
        need += _blocks_for(seq[i, S_PROMPT] + seq[i, S_OUT], block_size) - held
        i = seq[i, S_NEXT]
    return need


@numba.njit(inline="always")
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


@numba.njit(inline="always")
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


@numba.njit
def _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r, i):
    """``ReplicaState._to_front_of_queue``: decoder ``i`` to the front of its level, its blocks freed."""
    _leave_decode(seq, rep, last_s, grp_t, grp_c, r, i)
    _release(seq, rep, par, cache[0], r, i)
    if par[P_SWAP]:
        seq[i, S_SWAPPED] = seq[i, S_COMPUTED]
        rep[r, R_SWAP_TOKENS] += seq[i, S_COMPUTED]
    else:
        seq[i, S_COMPUTED] = 0
    log_preemptions[i] += 1
    seq[i, S_STATE] = WAITING
    _wait_front(seq, rep, r, i)
    rep[r, R_PREEMPTED] += 1


@numba.njit
def _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r):
    """Priority classes: preempt the youngest of the least urgent decoders, less urgent than the head
    of the queue, while the head lacks blocks (``_make_room_for_urgent``)."""
    if not par[P_PRIORITY_PREEMPTION] or not rep[r, R_WAIT + 2] or not rep[r, R_DECODE + 2]:
        return
    head = rep[r, R_WAIT]
    _use_cached_prefix(seq, rep, par, cache[0], cache[1], r, head)
    urgency = seq[head, S_LEVEL]
    held = seq[head, S_BLOCKS] + seq[head, S_SHARED]
    need = _blocks_for(seq[head, S_PROMPT] + seq[head, S_OUT], par[P_BLOCK_SIZE]) - held
    need = max(0, need) + par[P_WATERMARK]
    while need > rep[r, R_FREE]:
        victim, i = -1, rep[r, R_DECODE + 1]
        while i >= 0:  # youngest first; a tie keeps the younger
            if seq[i, S_LEVEL] > urgency and (victim < 0 or seq[i, S_LEVEL] > seq[victim, S_LEVEL]):
                victim = i
            i = seq[i, S_PREV]
        if victim < 0:
            return
        _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r, victim)


@numba.njit(inline="always")
def _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r):
    """Every member decodes one token; preempt the youngest while blocks are short."""
    pfx, pinned = cache
    block_size = par[P_BLOCK_SIZE]
    while rep[r, R_DECODE + 2] and not _has_free_blocks(
        seq, rep, pfx, pinned, r, _decode_need(seq, rep, r, block_size)
    ):
        _preempt(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r, rep[r, R_DECODE + 1])
    if not rep[r, R_DECODE + 2]:
        return
    _allocate(rep, par, pfx, r, _decode_need(seq, rep, r, block_size))
    i = rep[r, R_DECODE]
    while i >= 0:
        seq[i, S_BLOCKS] = _blocks_for(seq[i, S_PROMPT] + seq[i, S_OUT], block_size) - seq[i, S_SHARED]
        i = seq[i, S_NEXT]
    rep[r, R_PLAN_DECODE] = rep[r, R_DECODE + 2]
    rep[r, R_PLAN_KV] = rep[r, R_KV_TOKENS]


@numba.njit
def _plan_prefill(seq, rep, plan, r, i, num_tokens):
    n = rep[r, R_NUM_PLANNED]
    plan[r, n, 0], plan[r, n, 1] = i, num_tokens
    rep[r, R_NUM_PLANNED] = n + 1


@numba.njit
def _admit_waiting(seq, rep, par, plan, cache, r, budget, chunked, thrashing, long_needs_idle):
    """``_admit_waiting``: FCFS within the budget, sequence slots and KV blocks (watermark kept)."""
    if thrashing:
        return
    block_size, watermark = par[P_BLOCK_SIZE], par[P_WATERMARK]
    num_seqs = rep[r, R_PREFILL + 2] + rep[r, R_DECODE + 2]
    while rep[r, R_WAIT + 2] and num_seqs < par[P_MAX_SEQS] and budget > 0:
        i = rep[r, R_WAIT]
        _use_cached_prefix(seq, rep, par, cache[0], cache[1], r, i)
        num_new = seq[i, S_PROMPT] + seq[i, S_OUT] - seq[i, S_COMPUTED]
        if chunked:
            num_new = min(num_new, budget)
        elif num_new > budget and (rep[r, R_NUM_PLANNED] or (long_needs_idle and num_seqs)):
            break  # a prompt over the budget runs alone
        held = seq[i, S_BLOCKS] + seq[i, S_SHARED]
        need = max(0, _blocks_for(seq[i, S_COMPUTED] + num_new, block_size) - held)
        if need + (watermark if num_seqs else 0) > rep[r, R_FREE]:
            break
        _admit(seq, rep, par, cache, r, i, need)
        _plan_prefill(seq, rep, plan, r, i, num_new)
        budget -= num_new
        num_seqs += 1


@numba.njit
def _admit(seq, rep, par, cache, r, i, num_blocks):
    """``ReplicaState.admit``: the head of the queue starts prefilling, holding ``num_blocks`` more."""
    pfx, pinned = cache
    _allocate(rep, par, pfx, r, num_blocks)
    seq[i, S_BLOCKS] += num_blocks
    if seq[i, S_SHARED]:
        _unpin(rep, pinned, r, i)
    if seq[i, S_SWAPPED]:
        rep[r, R_SWAP_TOKENS] += seq[i, S_SWAPPED]
        seq[i, S_SWAPPED] = 0
    if par[P_CACHING] and seq[i, S_PREFIX] >= 0:
        rep[r, R_PREFIX_TOKENS] += seq[i, S_PREFIX_TOKENS]
        rep[r, R_HIT_TOKENS] += min(seq[i, S_PREFIX_TOKENS], seq[i, S_SHARED] * par[P_BLOCK_SIZE])
    seq[i, S_STATE] = PREFILLING
    _wait_pop(seq, rep, r)
    _link_back(seq, rep, r, R_PREFILL, i)


@numba.njit
def _continue_prefills(seq, rep, par, plan, cache, r, budget):
    """sarathi: prompts already being prefilled continue with a chunk each; returns the budget left."""
    block_size = par[P_BLOCK_SIZE]
    i = rep[r, R_PREFILL]
    while i >= 0 and budget > 0:
        chunk = min(seq[i, S_PROMPT] + seq[i, S_OUT] - seq[i, S_COMPUTED], budget)
        held = seq[i, S_BLOCKS] + seq[i, S_SHARED]
        need = max(0, _blocks_for(seq[i, S_COMPUTED] + chunk, block_size) - held)
        if not _has_free_blocks(seq, rep, cache[0], cache[1], r, need):
            break
        _allocate(rep, par, cache[0], r, need)
        seq[i, S_BLOCKS] += need
        _plan_prefill(seq, rep, plan, r, i, chunk)
        budget -= chunk
        i = seq[i, S_NEXT]
    return budget


@numba.njit
def _policy(seq, rep, par, last_s, grp_t, grp_c, plan, log_preemptions, cache, r):
    """The replica's next plan into ``rep[r]``'s plan columns and ``plan[r]``."""
    _unpin_waiting(seq, rep, cache[0], cache[1], r, True)
    rep[r, R_NUM_PLANNED] = rep[r, R_PLAN_DECODE] = rep[r, R_PLAN_KV] = rep[r, R_PREEMPTED] = 0
    policy, max_batched = par[P_POLICY], par[P_MAX_BATCHED]
    if policy == 0:  # vllm: prefills first, alone; else every member decodes
        if rep[r, R_WAIT + 2]:
            _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r)
            _admit_waiting(seq, rep, par, plan, cache, r, max_batched, False, False, False)
            if rep[r, R_NUM_PLANNED]:
                return
        _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r)
        return
    _make_room_for_urgent(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r)
    num_urgent_victims = rep[r, R_PREEMPTED]
    _decode_all(seq, rep, par, last_s, grp_t, grp_c, log_preemptions, cache, r)
    thrashing = rep[r, R_PREEMPTED] > num_urgent_victims
    if policy == 1:  # orca: whole prompts in what the decodes leave of the budget
        budget = max_batched - rep[r, R_PLAN_DECODE]
        _admit_waiting(seq, rep, par, plan, cache, r, budget, False, thrashing, True)
        return
    budget = (par[P_CHUNK] or max_batched) - rep[r, R_PLAN_DECODE]  # sarathi: chunks
    budget = _continue_prefills(seq, rep, par, plan, cache, r, budget)
    _admit_waiting(seq, rep, par, plan, cache, r, budget, True, thrashing, True)


@numba.njit(inline="always")
def _advance_decode(seq, rep, glob, dset, itl, done, r, now):
    """``DecodeSet.advance``: every member computed and sampled a token at ``now``; records the gaps
    and puts finishers (out of the set) into ``done``; returns how many."""
    last_s, last_end, grp_t, grp_c = dset
    itl_gap, itl_count = itl
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


@numba.njit
def _apply_step(seq, rep, glob, par, dset, plan, itl, scratch, cache, log_first, r, now):
    """``apply_step``: advance the planned sequences; finishers (blocks and prefix freed) into
    ``done``, in the order the engine records them; returns how many."""
    last_s, _, grp_t, grp_c = dset
    done, gap_t, gap_c = scratch
    num_done = _advance_decode(seq, rep, glob, dset, itl, done, r, now) if rep[r, R_PLAN_DECODE] else 0
    num_gaps = 0
    for k in range(rep[r, R_NUM_PLANNED]):
        i, chunk = plan[r, k, 0], plan[r, k, 1]
        seq[i, S_COMPUTED] += chunk
        if seq[i, S_COMPUTED] < seq[i, S_PROMPT] + seq[i, S_OUT]:
            continue
        _unlink(seq, rep, r, R_PREFILL, i)
        _cache_prefix(seq, rep, par, cache[0], r, i)
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
        _itl(glob, itl[0], itl[1], now - gap_t[g], gap_c[g])
    for k in range(num_done):  # in the order SimPy's engine releases them: decoders, then prefills
        seq[done[k], S_STATE] = FINISHED
        _release(seq, rep, par, cache[0], r, done[k])
    return num_done
