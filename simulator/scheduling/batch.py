"""BatchPlan: what one replica computes in one step, the plain data between scheduler and engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.scheduling.sequence import Sequence
from simulator.step_cost import BatchShape


@dataclass(slots=True)
class BatchPlan:
    """Sequences and how many tokens each computes in this step.

    ``prefills`` hold (sequence, chunk tokens). ``decode`` is True when every member of the replica's
    decode set computes one token; ``num_decode_tokens`` and ``decode_kv_tokens`` are then that set's
    size and the KV tokens it reads. ``preempted`` lists sequences the policy evicted to make room
    (already back in the waiting queue). An empty plan with ``wait_until_s`` asks the engine to sleep
    until then, or until a request arrives (static batching waiting for its batch to fill).
    """

    prefills: list[tuple[Sequence, int]] = field(default_factory=list)
    decode: bool = False
    num_decode_tokens: int = 0
    decode_kv_tokens: int = 0
    preempted: list[Sequence] = field(default_factory=list)
    wait_until_s: float | None = None

    @property
    def num_seqs(self) -> int:
        """Sequences computing in this step."""
        return len(self.prefills) + self.num_decode_tokens

    @property
    def is_empty(self) -> bool:
        """True when the step computes nothing."""
        return not self.prefills and not self.num_decode_tokens

    @property
    def num_prefill_tokens(self) -> int:
        """Prompt tokens computed in this step."""
        return sum(chunk for _, chunk in self.prefills) if self.prefills else 0

    def shape(self) -> BatchShape:
        """Aggregated token counts the cost model prices."""
        if not self.prefills:
            n = self.num_decode_tokens
            return BatchShape(0, 0, 0.0, 0, n, self.decode_kv_tokens, n)
        num_prefill_tokens = 0
        pairs = 0.0
        kv_read = 0
        num_logits = self.num_decode_tokens
        for seq, chunk in self.prefills:
            past = seq.num_computed_tokens
            num_prefill_tokens += chunk
            pairs += chunk * past + chunk * (chunk + 1) / 2
            kv_read += past + chunk
            if past + chunk == seq.num_tokens:
                num_logits += 1
        return BatchShape(
            num_prefill_tokens=num_prefill_tokens,
            num_prefill_seqs=len(self.prefills),
            prefill_attn_pairs=pairs,
            prefill_kv_tokens=kv_read,
            num_decode_tokens=self.num_decode_tokens,
            decode_kv_tokens=self.decode_kv_tokens,
            num_logit_tokens=num_logits,
        )
