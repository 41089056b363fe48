"""DecodeSet: the sequences of one replica that decode one token per step, advanced in O(1) per step.

In steady decode every member computes the token sampled last and samples the next one, so a step
changes every member the same way. Instead of touching each member per step, the set keeps a step
counter and aggregates, and brings a member's counters up to date (``sync``) only when something
happens to it (it finishes, is preempted, or someone reads it):

- KV tokens read by a step: ``sum(num_tokens)`` = ``_tokens_base + len(members) * step``.
- new KV blocks a step needs: a member holding ``T`` tokens (the last one not yet computed) needs a
  new block when ``T % block_size == 1``; members are counted in a histogram of ``(T - step) % bs``,
  so the count for the next step is one lookup.
- finishes: a heap of (finish step, push order); entries of members that left are skipped.
- inter-token gaps: members that decoded in the previous step share one gap; members that joined since
  (after their prefill) are grouped by the time of their last token.

Invariant (tested): a synced member holds ``blocks_for(num_computed_tokens)`` blocks, and the set's
aggregates equal the sums over its synced members.
"""

from __future__ import annotations

import heapq

import numpy as np

from simulator.scheduling.sequence import SeqStatus, Sequence


class DecodeSet:
    """Members in join order (the last is the youngest, preempted first)."""

    __slots__ = (
        "_finish_heap",
        "_heap_counter",
        "_hist",
        "_joined_since_step",
        "_tokens_base",
        "block_size",
        "last_step_end_s",
        "members",
        "num_continuing",
        "step",
    )

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.step = 0
        self.members: dict[Sequence, None] = {}
        self._hist = np.zeros(block_size, dtype=np.int64)
        self._tokens_base = 0
        self._finish_heap: list[tuple[int, int, Sequence]] = []  # (finish step, push order, member)
        self._heap_counter = 0
        self._joined_since_step: dict[float, int] = {}  # last_token_s -> members joined since last step
        self.num_continuing = 0  # members that decoded in the last step
        self.last_step_end_s = 0.0

    def __len__(self) -> int:
        return len(self.members)

    @property
    def num_kv_tokens(self) -> int:
        """KV tokens the next step reads: every member's prompt and output so far."""
        return self._tokens_base + len(self.members) * self.step

    def num_new_blocks(self) -> int:
        """KV blocks the members need, together, to compute the next step."""
        return self.num_new_blocks_at(self.step)

    def youngest(self) -> Sequence:
        """The member that joined last."""
        return next(reversed(self.members))

    def next_finish_step(self) -> int | None:
        """The step at whose end the next member finishes (stale heap entries are dropped)."""
        heap = self._finish_heap
        while heap:
            finish_step, _, seq = heap[0]
            if seq in self.members and seq.finish_step == finish_step:
                return finish_step
            heapq.heappop(heap)
        return None

    def num_new_blocks_at(self, step: int) -> int:
        """KV blocks the current members need together to compute decode step ``step`` (>= self.step)."""
        return int(self._hist[(1 - step) % self.block_size])

    @property
    def block_histogram(self) -> np.ndarray:
        """Members by ``(num_tokens - step) % block_size`` (read-only: see ``num_new_blocks_at``)."""
        return self._hist

    def sync(self, seq: Sequence) -> None:
        """Bring a member's counters up to the current step."""
        k = self.step - seq.sync_step
        if k:
            seq.num_output_tokens += k
            seq.num_computed_tokens += k
            seq.last_token_s = self.last_step_end_s
            seq.num_blocks = -(-seq.num_computed_tokens // self.block_size) - seq.num_shared_blocks
            seq.sync_step = self.step

    def add(self, seq: Sequence) -> None:
        """A sequence whose prompt is computed and whose first (or next) token is sampled joins."""
        step = self.step
        seq.sync_step = seq.join_step = step
        seq.finish_step = step + seq.max_output_tokens - seq.num_output_tokens
        self.members[seq] = None
        self._hist[(seq.num_tokens - step) % self.block_size] += 1
        self._tokens_base += seq.num_tokens - step
        self._heap_counter += 1
        heapq.heappush(self._finish_heap, (seq.finish_step, self._heap_counter, seq))
        groups = self._joined_since_step
        groups[seq.last_token_s] = groups.get(seq.last_token_s, 0) + 1

    def remove(self, seq: Sequence) -> None:
        """Take a member out (synced first); its heap entry is skipped later."""
        self.sync(seq)
        del self.members[seq]
        step = self.step
        self._hist[(seq.num_tokens - step) % self.block_size] -= 1
        self._tokens_base -= seq.num_tokens - step
        if seq.join_step == step:
            groups = self._joined_since_step
            groups[seq.last_token_s] -= 1
            if not groups[seq.last_token_s]:
                del groups[seq.last_token_s]
        else:
            self.num_continuing -= 1

    def advance(self, now_s: float, itl_groups: list[tuple[float, int]]) -> list[Sequence]:
        """Every member computed and sampled one token at ``now_s``: record the gaps, return finishers.

        The caller allocated ``num_new_blocks()`` blocks before the step; finishers are synced and
        removed, still holding their blocks (the caller frees them).
        """
        if self.num_continuing:
            itl_groups.append((now_s - self.last_step_end_s, self.num_continuing))
        for last_s, count in self._joined_since_step.items():
            itl_groups.append((now_s - last_s, count))
        self._joined_since_step.clear()
        self.step += 1
        self.last_step_end_s = now_s
        self.num_continuing = len(self.members)
        finished: list[Sequence] = []
        heap = self._finish_heap
        while heap and heap[0][0] <= self.step:
            _, _, seq = heapq.heappop(heap)
            if seq in self.members and seq.finish_step == self.step:
                self.remove(seq)
                seq.status = SeqStatus.FINISHED
                seq.finish_s = now_s
                finished.append(seq)
        return finished
