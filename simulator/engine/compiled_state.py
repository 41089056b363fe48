"""The compiled engine's arrays and their basic operations (L4): linked lists, the waiting queue's
priority levels, KV blocks and the event queue, written for numba.

The twins of ``simulator.scheduling.waiting.WaitingQueue`` and of ``simulator.kv_cache.BlockManager``'s
counting, doing what they do in the same order, and a binary heap ordered as SimPy orders its events;
the prefix cache is in ``simulator.engine.compiled_prefix``, the policies and the decode set in
``compiled_replica``, the event loop in ``compiled_kernel``.

Layout: ``seq[i]`` holds a request's counters (columns ``S_*``); ``rep[r]`` a replica's three linked
lists (waiting, prefilling, decoding: head, tail, length, threaded through ``seq``'s next/prev columns),
its KV, prefix-cache and decode-set counters and its step in flight (``R_*``); ``pfx[r, prefix]`` its
cached prefixes (``X_*``); ``glob`` and ``par`` the run's counters (``G_*``) and parameters (``P_*``).

Only the kernel's entry point (``compiled_kernel.run``) is cached on disk, with everything here compiled
into it; numba keys that cache on the entry point's own file, so the kernel records the digest of the
files it compiles in (``compiled_kernel.SOURCES_DIGEST``, checked by ``tests/test_compiled_engine.py``).
Small functions called once per step are inlined into their callers (``inline="always"``).
"""

from __future__ import annotations

import numba

# seq columns (int64). The first eight, what a decode step reads of every member, share one 64-byte
# cache line (rows are 24 columns, 192 bytes). S_SHARED: blocks of a cached prefix it shares.
S_PROMPT, S_MAX_OUT, S_OUT, S_COMPUTED, S_BLOCKS, S_SHARED, S_NEXT, S_PREV = range(8)
S_STATE, S_JOIN, S_SWAPPED, S_REPLICA, S_LEVEL = range(8, 13)  # S_LEVEL: its class's rank by priority
S_ROUTE = 13  # in row k, the random router's k-th draw (for the k-th request routed)
S_PREFIX, S_PREFIX_TOKENS = 14, 15  # its prefix (-1: none), that prefix's tokens
S_NEXT_TURN, S_FOLLOW_UP = 16, 17  # sessions: its session's next turn (-1: none); whether it is a later turn
SEQ_COLUMNS = 24
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
G_ERROR_REPLICA, G_DRAWS = 9, 10  # G_DRAWS: the random router's draws used so far
GLOB_COLUMNS = 11
# params (int64)
P_BLOCK_SIZE, P_MAX_SEQS, P_MAX_BATCHED, P_CHUNK, P_POLICY, P_ROUTER, P_WATERMARK = range(7)
P_SWAP, P_NUM_BLOCKS, P_CLOSED_LOOP, P_CLIENTS, P_PRIORITY_PREEMPTION, P_CACHING = range(7, 13)
PARAM_COLUMNS = 13


@numba.njit(inline="always")
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


@numba.njit
def _link_front(seq, rep, r, at, i):
    head = rep[r, at]
    seq[i, S_PREV], seq[i, S_NEXT] = -1, head
    if head >= 0:
        seq[head, S_PREV] = i
    else:
        rep[r, at + 1] = i
    rep[r, at] = i
    rep[r, at + 2] += 1


@numba.njit(inline="always")
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


@numba.njit
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


@numba.njit
def _last_more_urgent(rep, r, level):
    """The last waiting request of the nearest non-empty more urgent level (-1: none)."""
    for more_urgent in range(level - 1, -1, -1):
        if rep[r, R_LEVELS + 2 * more_urgent + 1] >= 0:
            return rep[r, R_LEVELS + 2 * more_urgent + 1]
    return -1


@numba.njit
def _wait_back(seq, rep, r, i):
    """``WaitingQueue.append``: to the back of its priority level."""
    at = R_LEVELS + 2 * seq[i, S_LEVEL]
    tail = rep[r, at + 1]
    prev = tail if tail >= 0 else _last_more_urgent(rep, r, seq[i, S_LEVEL])
    _insert_after(seq, rep, r, R_WAIT, prev, i)
    rep[r, at + 1] = i
    if rep[r, at] < 0:
        rep[r, at] = i


@numba.njit
def _wait_front(seq, rep, r, i):
    """``WaitingQueue.appendleft``: to the front of its priority level (a preempted request)."""
    at = R_LEVELS + 2 * seq[i, S_LEVEL]
    head = rep[r, at]
    prev = seq[head, S_PREV] if head >= 0 else _last_more_urgent(rep, r, seq[i, S_LEVEL])
    _insert_after(seq, rep, r, R_WAIT, prev, i)
    rep[r, at] = i
    if rep[r, at + 1] < 0:
        rep[r, at + 1] = i


@numba.njit
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


@numba.njit(inline="always")
def _blocks_for(num_tokens, block_size):
    return -(-num_tokens // block_size)


@numba.njit(inline="always")
def _take(rep, par, r, num_blocks):
    """``BlockManager.allocate``: move blocks from free to used, keeping the peak."""
    rep[r, R_FREE] -= num_blocks
    used = par[P_NUM_BLOCKS] - rep[r, R_FREE]
    if used > rep[r, R_PEAK]:
        rep[r, R_PEAK] = used


@numba.njit(inline="always")
def _itl(glob, itl_gap, itl_count, gap_s, count):
    n = glob[G_ITL]
    itl_gap[n] = gap_s
    itl_count[n] = count
    glob[G_ITL] = n + 1


# --- the event queue: a binary heap on (time, priority, schedule order), as SimPy's


@numba.njit(inline="always")
def _before(heap_t, heap_k, a, b):
    """Whether heap entry ``a`` comes before ``b``: (time, priority, schedule order)."""
    if heap_t[a] != heap_t[b]:
        return heap_t[a] < heap_t[b]
    if heap_k[a, 0] != heap_k[b, 0]:
        return heap_k[a, 0] < heap_k[b, 0]
    return heap_k[a, 1] < heap_k[b, 1]


@numba.njit(inline="always")
def _swap(heap_t, heap_k, a, b):
    heap_t[a], heap_t[b] = heap_t[b], heap_t[a]
    for c in range(4):
        heap_k[a, c], heap_k[b, c] = heap_k[b, c], heap_k[a, c]


@numba.njit(inline="always")
def _push(glob, heap_t, heap_k, when_s, priority, kind, replica):
    """Schedule an event (SimPy's ``schedule``: it takes the next event id)."""
    n = glob[G_HEAP]
    heap_t[n] = when_s
    heap_k[n, 0], heap_k[n, 1], heap_k[n, 2], heap_k[n, 3] = priority, glob[G_EID], kind, replica
    glob[G_EID] += 1
    glob[G_HEAP] = n + 1
    while n > 0:
        parent = (n - 1) // 2
        if not _before(heap_t, heap_k, n, parent):
            break
        _swap(heap_t, heap_k, n, parent)
        n = parent


@numba.njit
def _pop(glob, heap_t, heap_k):
    """Remove the first event into the last slot; returns that slot."""
    n = glob[G_HEAP] - 1
    _swap(heap_t, heap_k, 0, n)
    glob[G_HEAP] = n
    i = 0
    while True:
        left, right, low = 2 * i + 1, 2 * i + 2, i
        if left < n and _before(heap_t, heap_k, left, low):
            low = left
        if right < n and _before(heap_t, heap_k, right, low):
            low = right
        if low == i:
            return n
        _swap(heap_t, heap_k, i, low)
        i = low
