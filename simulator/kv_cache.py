"""Paged KV cache: a pool of fixed-size blocks per replica. No clock, no simpy.

A sequence holding ``n`` tokens of KV occupies ceil(n / block_size) blocks (vLLM's PagedAttention:
waste is at most one partly filled block per sequence). Blocks are counted, not named: which block a
sequence holds does not change any time or capacity.

Prefix caching (``PrefixCache``): the full blocks of a shared prefix (a system prompt) stay resident
after the sequence that computed them ends, keyed by the prefix's id. A resident prefix referenced by
no running sequence is *evictable*: it counts as free (``num_free_blocks``) and is evicted, least
recently used first, only when an allocation needs its blocks.

Invariant (tested): ``num_free_blocks + sum(blocks held by sequences) + blocks of referenced prefixes
== num_blocks``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Prefix:
    num_blocks: int
    refcount: int = 0


class PrefixCache:
    """Resident prefixes by id; the unreferenced ones in LRU order (oldest first)."""

    __slots__ = ("_idle", "entries", "num_evictable_blocks", "num_hit_tokens", "num_prefix_tokens")

    def __init__(self) -> None:
        self.entries: dict[int, _Prefix] = {}
        self._idle: OrderedDict[int, None] = OrderedDict()
        self.num_evictable_blocks = 0
        self.num_prefix_tokens = 0  # prefix tokens of the prompts admitted (recomputations included)
        self.num_hit_tokens = 0  # of which found in the cache

    def resident_blocks(self, prefix_id: int) -> int:
        """Blocks of ``prefix_id`` in the cache (0 when it is not resident)."""
        entry = self.entries.get(prefix_id)
        return entry.num_blocks if entry is not None else 0

    def acquire(self, prefix_id: int) -> tuple[int, int]:
        """Reference a resident prefix: (its blocks, blocks that stopped being evictable)."""
        entry = self.entries[prefix_id]
        entry.refcount += 1
        if entry.refcount > 1:
            return entry.num_blocks, 0
        del self._idle[prefix_id]
        self.num_evictable_blocks -= entry.num_blocks
        return entry.num_blocks, entry.num_blocks

    def insert(self, prefix_id: int, num_blocks: int) -> None:
        """A prefix just computed (``num_blocks`` full blocks) joins the cache, referenced once."""
        self.entries[prefix_id] = _Prefix(num_blocks, 1)

    def grow(self, prefix_id: int, num_blocks: int) -> None:
        """A referenced prefix gains ``num_blocks`` blocks its holder computed (a session's history)."""
        entry = self.entries[prefix_id]
        assert entry.refcount > 0
        entry.num_blocks += num_blocks

    def release(self, prefix_id: int) -> int:
        """Drop one reference; returns the blocks that became evictable (0 while others hold it)."""
        entry = self.entries[prefix_id]
        entry.refcount -= 1
        if entry.refcount:
            return 0
        self._idle[prefix_id] = None
        self.num_evictable_blocks += entry.num_blocks
        return entry.num_blocks

    def evict_until(self, num_truly_free: int, wanted: int) -> None:
        """Evict idle prefixes, least recently used first, until ``wanted`` blocks are truly free."""
        while num_truly_free < wanted and self._idle:
            prefix_id, _ = self._idle.popitem(last=False)
            entry = self.entries.pop(prefix_id)
            self.num_evictable_blocks -= entry.num_blocks
            num_truly_free += entry.num_blocks


class BlockManager:
    """Counts free blocks (evictable cached prefixes included); sequences record the blocks they hold."""

    __slots__ = ("block_size", "num_blocks", "num_free_blocks", "peak_used_blocks", "prefixes")

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = False) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"num_blocks={num_blocks} and block_size={block_size} must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.num_free_blocks = num_blocks
        self.peak_used_blocks = 0
        self.prefixes = PrefixCache() if prefix_caching else None

    @property
    def num_used_blocks(self) -> int:
        """Blocks held by sequences."""
        return self.num_blocks - self.num_free_blocks

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens of KV."""
        return -(-num_tokens // self.block_size)

    def num_new_blocks(self, held_blocks: int, num_tokens: int) -> int:
        """Extra blocks a sequence holding ``held_blocks`` needs to reach ``num_tokens`` tokens."""
        return max(0, self.blocks_for(num_tokens) - held_blocks)

    def can_allocate(self, num_blocks: int) -> bool:
        """Whether ``num_blocks`` more blocks are free."""
        return num_blocks <= self.num_free_blocks

    def allocate(self, num_blocks: int) -> None:
        """Take ``num_blocks`` from the free pool (the caller checked ``can_allocate``)."""
        if num_blocks > self.num_free_blocks:
            raise RuntimeError(f"allocating {num_blocks} blocks with only {self.num_free_blocks} free")
        cache = self.prefixes
        if cache is not None and cache.num_evictable_blocks:
            cache.evict_until(self.num_free_blocks - cache.num_evictable_blocks, num_blocks)
        self._take(num_blocks)

    def _take(self, num_blocks: int) -> None:
        """Move ``num_blocks`` from free to used, keeping the peak."""
        self.num_free_blocks -= num_blocks
        used = self.num_blocks - self.num_free_blocks
        if used > self.peak_used_blocks:
            self.peak_used_blocks = used

    def free(self, num_blocks: int) -> None:
        """Return ``num_blocks`` to the pool."""
        if num_blocks < 0 or self.num_free_blocks + num_blocks > self.num_blocks:
            raise RuntimeError(f"freeing {num_blocks} blocks would exceed the pool of {self.num_blocks}")
        self.num_free_blocks += num_blocks

    def cached_prefix_blocks(self, prefix_id: int) -> int:
        """Blocks of ``prefix_id`` resident in the prefix cache (0 without caching or when evicted)."""
        return self.prefixes.resident_blocks(prefix_id) if self.prefixes is not None else 0

    def acquire_prefix(self, prefix_id: int) -> int:
        """Reference a resident prefix (taking it off the evictable pool); returns its blocks."""
        assert self.prefixes is not None
        num_blocks, reactivated = self.prefixes.acquire(prefix_id)
        if reactivated:
            self._take(reactivated)
        return num_blocks

    def insert_prefix(self, prefix_id: int, num_blocks: int) -> None:
        """The first ``num_blocks`` blocks a sequence computed become the cached prefix it references."""
        assert self.prefixes is not None
        self.prefixes.insert(prefix_id, num_blocks)

    def grow_prefix(self, prefix_id: int, num_blocks: int) -> None:
        """A referenced prefix takes over ``num_blocks`` more blocks from the sequence holding it."""
        assert self.prefixes is not None
        self.prefixes.grow(prefix_id, num_blocks)

    def release_prefix(self, prefix_id: int) -> None:
        """Drop a sequence's reference; an unreferenced prefix stays resident but evictable (free)."""
        assert self.prefixes is not None
        self.num_free_blocks += self.prefixes.release(prefix_id)
