"""Paged KV cache: a pool of fixed-size blocks per replica. No clock, no simpy.

A sequence holding ``n`` tokens of KV occupies ceil(n / block_size) blocks (vLLM's PagedAttention:
waste is at most one partly filled block per sequence). Blocks are counted, not named: without prefix
sharing, which block a sequence holds does not change any time or capacity.

Invariant (tested): ``num_free_blocks + sum(blocks held by sequences) == num_blocks``.
"""

from __future__ import annotations


class BlockManager:
    """Counts free blocks; sequences record how many blocks they hold."""

    __slots__ = ("block_size", "num_blocks", "num_free_blocks", "peak_used_blocks")

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"num_blocks={num_blocks} and block_size={block_size} must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.num_free_blocks = num_blocks
        self.peak_used_blocks = 0

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
        self.num_free_blocks -= num_blocks
        used = self.num_blocks - self.num_free_blocks
        if used > self.peak_used_blocks:
            self.peak_used_blocks = used

    def free(self, num_blocks: int) -> None:
        """Return ``num_blocks`` to the pool."""
        if num_blocks < 0 or self.num_free_blocks + num_blocks > self.num_blocks:
            raise RuntimeError(f"freeing {num_blocks} blocks would exceed the pool of {self.num_blocks}")
        self.num_free_blocks += num_blocks
