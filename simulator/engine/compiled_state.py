"""The compiled engine's arrays and their basic operations (L4): linked lists, the waiting queue's
priority levels, KV blocks and the prefix cache, written for numba.

The twins of ``simulator.scheduling.waiting.WaitingQueue``, ``simulator.kv_cache.BlockManager`` and
``PrefixCache``, and of ``ReplicaState``'s prefix methods (``use_cached_prefix``, ``unpin_waiting``,
``has_free_blocks``, ``cache_prefix``, ``release``), doing what they do in the same order; the policies
and the decode set are in ``simulator.engine.compiled_replica``, the event loop in ``compiled_kernel``.

Layout: ``seq[i]`` holds a request's counters (columns ``S_*``); ``rep[r]`` a replica's three linked
lists (waiting, prefilling, decoding: head, tail, length, threaded through ``seq``'s next/prev columns),
its KV, prefix-cache and decode-set counters and its step in flight (``R_*``); ``pfx[r, prefix]`` its
cached prefixes (``X_*``), ``pinned[r]`` its waiting requests that hold one; ``glob`` and ``par`` the
run's counters (``G_*``) and parameters (``P_*``).

numba's on-disk cache is keyed on each compiled function's own file: code compiled into the kernel from
this module would go stale when it changes alone, so the kernel records the digest of the files it
compiles in (``compiled_kernel.SOURCES_DIGEST``, checked by ``tests/test_compiled_engine.py``).
"""

from __future__ import annotations

import numba

# seq columns (int64); S_ROUTE: the random router's draw for the request, drawn beforehand
S_PROMPT, S_MAX_OUT, S_OUT, S_COMPUTED, S_BLOCKS, S_STATE, S_NEXT, S_PREV, S_JOIN, S_SWAPPED = range(10)
S_REPLICA, S_ROUTE, S_LEVEL = 10, 11, 12  # S_LEVEL: its class's rank by priority (0: most urgent)
S_PREFIX, S_PREFIX_TOKENS, S_SHARED = 13, 14, 15  # its prefix (-1: none), that prefix's tokens, shared blocks
S_NEXT_TURN, S_FOLLOW_UP = 16, 17  # sessions: its session's next turn (-1: none); whether it is a later turn
SEQ_COLUMNS = 18
# S_STATE values
NEW, WAITING, PREFILLING, DECODING, FINISHED, REJECTED = range(6)
# rep columns (int64): three linked lists (head, tail, length), KV, the decode set, the step in flight
R_WAIT, R_PREFILL, R_DECODE = 0, 3, 6  # + 0 head, + 1 tail, + 2 length
R_FREE, R_PEAK, R_KV_TOKENS, R_STEP, R_CONTINUING, R_NUM_GROUPS, R_SLEEPING = range(9, 16)
R_NUM_PLANNED, R_PLAN_DECODE, R_PLAN_KV, R_SWAP_TOKENS, R_PREEMPTED = range(16, 21)
# the prefix cache: its idle (evictable) prefixes oldest first, their blocks, its hit counters, the
# waiting requests holding a cached prefix (``pinned[r]``)
R_IDLE_HEAD, R_IDLE_TAIL, R_EVICTABLE, R_PREFIX_TOKENS, R_HIT_TOKENS, R_NUM_PINNED = range(21, 27)
R_LEVELS = 27  # + 2 level, + 2 level + 1: the first and last waiting request of each priority level
MAX_LEVELS = 8
REP_COLUMNS = R_LEVELS + 2 * MAX_LEVELS
# pfx[r, prefix] columns (int64): resident blocks (0: not cached), references, the idle list's links
X_BLOCKS, X_REFS, X_PREV, X_NEXT = range(4)
# glob (int64)
G_EID, G_NEXT_REQUEST, G_COUNTER, G_HEAP, G_ROWS, G_ITL, G_PENDING, G_NEED_TOKENS, G_STARTED = range(9)
G_ERROR_REPLICA = 9
GLOB_COLUMNS = 10
# params (int64)
P_BLOCK_SIZE, P_MAX_SEQS, P_MAX_BATCHED, P_CHUNK, P_POLICY, P_ROUTER, P_WATERMARK = range(7)
P_SWAP, P_NUM_BLOCKS, P_CLOSED_LOOP, P_CLIENTS, P_PRIORITY_PREEMPTION, P_CACHING = range(7, 13)
PARAM_COLUMNS = 13


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


# --- the prefix cache (kv_cache.py: PrefixCache, BlockManager; scheduling/state.py: its callers)


@numba.njit(cache=True)
def _allocate(rep, par, pfx, r, num_blocks):
    """``BlockManager.allocate``: evict idle prefixes, least recently used first, until the blocks are
    truly free (evictable blocks count as free), then take them."""
    if rep[r, R_EVICTABLE]:
        truly_free = rep[r, R_FREE] - rep[r, R_EVICTABLE]
        while truly_free < num_blocks and rep[r, R_IDLE_HEAD] >= 0:
            p = rep[r, R_IDLE_HEAD]
            _idle_unlink(rep, pfx, r, p)
            rep[r, R_EVICTABLE] -= pfx[r, p, X_BLOCKS]
            truly_free += pfx[r, p, X_BLOCKS]
            pfx[r, p, X_BLOCKS] = 0
    _take(rep, par, r, num_blocks)


@numba.njit(cache=True)
def _idle_unlink(rep, pfx, r, p):
    prev, nxt = pfx[r, p, X_PREV], pfx[r, p, X_NEXT]
    if prev >= 0:
        pfx[r, prev, X_NEXT] = nxt
    else:
        rep[r, R_IDLE_HEAD] = nxt
    if nxt >= 0:
        pfx[r, nxt, X_PREV] = prev
    else:
        rep[r, R_IDLE_TAIL] = prev


@numba.njit(cache=True)
def _acquire(rep, par, pfx, r, p):
    """``BlockManager.acquire_prefix``: one more reference; the first takes it off the evictable pool."""
    pfx[r, p, X_REFS] += 1
    if pfx[r, p, X_REFS] == 1:
        _idle_unlink(rep, pfx, r, p)
        rep[r, R_EVICTABLE] -= pfx[r, p, X_BLOCKS]
        _take(rep, par, r, pfx[r, p, X_BLOCKS])


@numba.njit(cache=True)
def _release_prefix(rep, pfx, r, p):
    """``BlockManager.release_prefix``: the last reference leaves it resident, idle and evictable (free)."""
    pfx[r, p, X_REFS] -= 1
    if pfx[r, p, X_REFS]:
        return
    tail = rep[r, R_IDLE_TAIL]
    pfx[r, p, X_PREV], pfx[r, p, X_NEXT] = tail, -1
    if tail >= 0:
        pfx[r, tail, X_NEXT] = p
    else:
        rep[r, R_IDLE_HEAD] = p
    rep[r, R_IDLE_TAIL] = p
    rep[r, R_EVICTABLE] += pfx[r, p, X_BLOCKS]
    rep[r, R_FREE] += pfx[r, p, X_BLOCKS]


@numba.njit(cache=True)
def _release(seq, rep, par, pfx, r, i):
    """``ReplicaState.release``: free the blocks request ``i`` holds and its reference to its prefix; a
    finished session turn with a next turn first leaves its conversation cached for it."""
    if par[P_CACHING] and seq[i, S_NEXT_TURN] >= 0 and seq[i, S_STATE] == FINISHED:
        _cache_history(seq, rep, par, pfx, r, i, seq[i, S_COMPUTED])
    rep[r, R_FREE] += seq[i, S_BLOCKS]
    seq[i, S_BLOCKS] = 0
    if seq[i, S_SHARED]:
        _release_prefix(rep, pfx, r, seq[i, S_PREFIX])
        seq[i, S_SHARED] = 0


@numba.njit(cache=True)
def _use_cached_prefix(seq, rep, par, pfx, pinned, r, i):
    """``ReplicaState.use_cached_prefix``: the head of the queue shares its prefix's cached blocks."""
    p = seq[i, S_PREFIX]
    if not par[P_CACHING] or p < 0 or seq[i, S_SHARED] or seq[i, S_COMPUTED]:
        return
    block_size = par[P_BLOCK_SIZE]
    usable = min(pfx[r, p, X_BLOCKS], (seq[i, S_PROMPT] + seq[i, S_OUT] - 1) // block_size)
    if usable <= 0:
        return
    _acquire(rep, par, pfx, r, p)
    seq[i, S_SHARED] = usable
    seq[i, S_COMPUTED] = usable * block_size
    pinned[r, rep[r, R_NUM_PINNED]] = i
    rep[r, R_NUM_PINNED] += 1


@numba.njit(cache=True)
def _unpin_waiting(seq, rep, pfx, pinned, r, keep_head):
    """``ReplicaState.unpin_waiting``: waiting requests give their cached prefixes back (but the head,
    with ``keep_head``); those admitted since leave the list."""
    head = rep[r, R_WAIT] if keep_head else -1
    kept = 0
    for k in range(rep[r, R_NUM_PINNED]):
        i = pinned[r, k]
        if seq[i, S_STATE] != WAITING:
            continue
        if i == head:
            pinned[r, kept] = i
            kept += 1
            continue
        _release_prefix(rep, pfx, r, seq[i, S_PREFIX])
        seq[i, S_SHARED] = 0
        seq[i, S_COMPUTED] = 0
    rep[r, R_NUM_PINNED] = kept


@numba.njit(cache=True)
def _has_free_blocks(seq, rep, pfx, pinned, r, num_blocks):
    """``ReplicaState.has_free_blocks``: when short, waiting requests give their prefixes back first."""
    if num_blocks > rep[r, R_FREE] and rep[r, R_NUM_PINNED]:
        _unpin_waiting(seq, rep, pfx, pinned, r, False)
    return num_blocks <= rep[r, R_FREE]


@numba.njit(cache=True)
def _unpin(rep, pinned, r, i):
    """An admitted request's prefix reference goes with it (``ReplicaState.admit``)."""
    n = rep[r, R_NUM_PINNED]
    for k in range(n):
        if pinned[r, k] == i:
            for m in range(k, n - 1):
                pinned[r, m] = pinned[r, m + 1]
            rep[r, R_NUM_PINNED] = n - 1
            return


@numba.njit(cache=True)
def _cache_prefix(seq, rep, par, pfx, r, i):
    """``ReplicaState.cache_prefix``: once its prompt is computed, a request's prefix joins the cache
    (its full blocks, taken over from the request) unless it is there already."""
    p = seq[i, S_PREFIX]
    if par[P_CACHING] and seq[i, S_NEXT_TURN] >= 0 and p >= 0:
        _cache_history(seq, rep, par, pfx, r, i, min(seq[i, S_PREFIX_TOKENS], seq[i, S_COMPUTED]))
        return
    if not par[P_CACHING] or p < 0 or seq[i, S_SHARED] or pfx[r, p, X_BLOCKS]:
        return
    num_blocks = min(seq[i, S_PREFIX_TOKENS], seq[i, S_COMPUTED]) // par[P_BLOCK_SIZE]
    if num_blocks:
        pfx[r, p, X_BLOCKS], pfx[r, p, X_REFS] = num_blocks, 1
        seq[i, S_BLOCKS] -= num_blocks
        seq[i, S_SHARED] = num_blocks


@numba.njit(cache=True)
def _cache_history(seq, rep, par, pfx, r, i, num_tokens):
    """``ReplicaState.cache_history``: a session turn's first ``num_tokens`` tokens (full blocks) become
    its session's cached prefix, or extend it when the turn holds all of the cached part."""
    p = seq[i, S_PREFIX]
    cached = pfx[r, p, X_BLOCKS]
    if cached and seq[i, S_SHARED] != cached:
        return  # it computed its own copy: the cached one stays
    extra = num_tokens // par[P_BLOCK_SIZE] - cached
    if extra <= 0:
        return
    if not cached:
        pfx[r, p, X_REFS] = 1
    pfx[r, p, X_BLOCKS] += extra
    seq[i, S_BLOCKS] -= extra
    seq[i, S_SHARED] += extra
