"""One request's state inside a replica, in token counts (vLLM v1's vocabulary).

``num_tokens`` = prompt + generated so far; ``num_computed_tokens`` = tokens whose KV is in the cache.
A step computes ``num_tokens - num_computed_tokens`` tokens at most (the prompt, or a chunk of it,
or the one token generated last); when it catches up, the model samples one new token.
After a preemption by recomputation the KV is dropped (``num_computed_tokens = 0``) and the prompt
plus everything generated so far is computed again as one longer prompt; after a swap the KV waits in
host memory (``num_swapped_tokens``) and is copied back when the sequence is readmitted.

While a sequence is a member of its replica's ``DecodeSet`` its token counters are brought up to date
lazily (``DecodeSet.sync``): the decode set advances all members in O(1) per step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SeqStatus(enum.Enum):
    """Where a sequence is in its life (a rejected request never becomes a Sequence)."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class Sequence:
    """Mutable per-request state owned by one replica."""

    request_id: int
    arrival_s: float
    num_prompt_tokens: int
    max_output_tokens: int
    replica: int = -1
    num_output_tokens: int = 0
    num_computed_tokens: int = 0
    num_blocks: int = 0
    status: SeqStatus = SeqStatus.WAITING
    first_token_s: float = float("nan")
    last_token_s: float = float("nan")
    finish_s: float = float("nan")
    num_preemptions: int = 0
    priority: int = 0  # its request class's priority: lower is served first
    prefix_id: int = -1  # a shared prefix (system prompt) it starts with, -1 for none
    prefix_tokens: int = 0  # that prefix's length (part of num_prompt_tokens)
    num_shared_blocks: int = 0  # blocks of a cached prefix it references (not in num_blocks)
    num_swapped_tokens: int = 0  # KV tokens it holds in host memory while waiting (swap preemption)
    cache_history: bool = False  # a session turn with a next turn: its whole KV stays cached when it ends
    # DecodeSet bookkeeping: the decode-set step at which the counters above were last brought up
    # to date, the step it joined at, and the step at which it will have all its output tokens.
    sync_step: int = 0
    join_step: int = 0
    finish_step: int = 0

    @property
    def num_tokens(self) -> int:
        """Prompt plus generated tokens."""
        return self.num_prompt_tokens + self.num_output_tokens

    @property
    def num_held_blocks(self) -> int:
        """Blocks whose KV it reads: its own and those of a cached prefix it shares."""
        return self.num_blocks + self.num_shared_blocks

    @property
    def num_uncomputed_tokens(self) -> int:
        """Tokens whose KV still has to be computed before the next token can be sampled."""
        return self.num_tokens - self.num_computed_tokens
