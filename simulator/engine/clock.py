"""The engine's clock: SimPy's environment with absolute timeouts, movable wake-ups and late events (L4)."""

from __future__ import annotations

from heapq import heappop, heappush

import simpy
from simpy.events import NORMAL, EventPriority


class Late(simpy.Event):
    """An event due now that fires after every ordinary event due at the same instant.

    A replica plans its next step in one of these, so a request that arrives (or is submitted by a
    finishing request) at the very instant a step ends is seen by that plan, whatever order SimPy
    happens to process same-time events in. Built like ``simpy.Timeout(env, 0)``, at a lower priority.
    """

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, _LATE)


_LATE = EventPriority(NORMAL + 1)


class Environment(simpy.Environment):
    """SimPy's environment plus timeouts at an absolute time, and wake-ups moved earlier (``reschedule``).

    ``env.timeout(when - now)`` lands on ``now + (when - now)``, which rounding can move off ``when``
    by an ulp (and round-half-even can make ``when`` unreachable that way): a decode run must end at
    exactly the time its last step would have ended step by step.
    """

    def step(self) -> None:
        """SimPy's step, after dropping the stale entries ``reschedule`` leaves behind."""
        queue = self._queue
        while queue and queue[0][3].callbacks is None:
            heappop(queue)
        super().step()

    def peek(self) -> float:
        """SimPy's peek, ignoring stale entries."""
        queue = self._queue
        while queue and queue[0][3].callbacks is None:
            heappop(queue)
        return super().peek()

    def reschedule(self, event: simpy.Event, when_s: float) -> None:
        """Make a scheduled, unprocessed ``event`` fire at ``when_s`` (>= now) instead, if earlier: its
        old entry stays in the queue and is dropped when it comes up (the event was processed)."""
        heappush(self._queue, (when_s, NORMAL, next(self._eid), event))

    def timeout_at(self, when_s: float) -> simpy.Event:
        """An event that fires at exactly ``when_s`` (>= now), like a Timeout."""
        if when_s < self._now:
            raise ValueError(f"timeout_at({when_s}) is in the past (now = {self._now})")
        event = simpy.Event(self)
        event._ok = True
        event._value = None
        heappush(self._queue, (when_s, NORMAL, next(self._eid), event))
        return event
