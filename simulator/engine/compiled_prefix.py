"""The compiled engine's prefix cache (L4): the twin of ``simulator.kv_cache.PrefixCache`` and of
``ReplicaState``'s prefix methods, for numba.

``pfx[r, prefix]`` holds replica ``r``'s cached prefixes (``X_*`` columns: resident blocks, references,
links of the idle list, least recently used first); ``pinned[r]`` the waiting requests that hold one.
An idle prefix's blocks count as free and are evicted when an allocation needs them; a waiting request
at the head of the queue shares its prefix's blocks and skips computing them; a computed prefix (or a
session turn's conversation) joins the cache. Each function does what its Python twin does, in the
same order (``tests/test_compiled_engine.py`` compares the engines). Layout: ``compiled_state``.
"""

from __future__ import annotations

import numba

from simulator.engine.compiled_state import (
    FINISHED,
    P_BLOCK_SIZE,
    P_CACHING,
    R_EVICTABLE,
    R_FREE,
    R_IDLE_HEAD,
    R_IDLE_TAIL,
    R_NUM_PINNED,
    R_WAIT,
    S_BLOCKS,
    S_COMPUTED,
    S_NEXT_TURN,
    S_OUT,
    S_PREFIX,
    S_PREFIX_TOKENS,
    S_PROMPT,
    S_SHARED,
    S_STATE,
    WAITING,
    X_BLOCKS,
    X_NEXT,
    X_PREV,
    X_REFS,
    _take,
)


@numba.njit(inline="always")
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


@numba.njit
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


@numba.njit
def _acquire(rep, par, pfx, r, p):
    """``BlockManager.acquire_prefix``: one more reference; the first takes it off the evictable pool."""
    pfx[r, p, X_REFS] += 1
    if pfx[r, p, X_REFS] == 1:
        _idle_unlink(rep, pfx, r, p)
        rep[r, R_EVICTABLE] -= pfx[r, p, X_BLOCKS]
        _take(rep, par, r, pfx[r, p, X_BLOCKS])


@numba.njit
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


@numba.njit(inline="always")
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


@numba.njit(inline="always")
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


@numba.njit(inline="always")
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


@numba.njit(inline="always")
def _has_free_blocks(seq, rep, pfx, pinned, r, num_blocks):
    """``ReplicaState.has_free_blocks``: when short, waiting requests give their prefixes back first."""
    if num_blocks > rep[r, R_FREE] and rep[r, R_NUM_PINNED]:
        _unpin_waiting(seq, rep, pfx, pinned, r, False)
    return num_blocks <= rep[r, R_FREE]


@numba.njit
def _unpin(rep, pinned, r, i):
    """An admitted request's prefix reference goes with it (``ReplicaState.admit``)."""
    n = rep[r, R_NUM_PINNED]
    for k in range(n):
        if pinned[r, k] == i:
            for m in range(k, n - 1):
                pinned[r, m] = pinned[r, m + 1]
            rep[r, R_NUM_PINNED] = n - 1
            return


@numba.njit(inline="always")
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


@numba.njit
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
