"""WaitingQueue: a replica's waiting requests, most urgent priority level first, FCFS within a level.

Without request classes every request has priority 0 and this is a plain FIFO (one deque). With
classes, each priority level (lower number = more urgent) has its own deque, so admitting the most
urgent request and queueing a new one stay O(levels), not O(queue length).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from simulator.scheduling.sequence import Sequence


class WaitingQueue:
    """The queue a policy admits from: ``queue[0]`` is the next request to admit."""

    __slots__ = ("_levels", "_order", "num_waiting")

    def __init__(self) -> None:
        self._levels: dict[int, deque[Sequence]] = {}
        self._order: list[int] = []  # the priority levels seen, most urgent first
        self.num_waiting = 0

    def __len__(self) -> int:
        return self.num_waiting

    def __bool__(self) -> bool:
        return self.num_waiting > 0

    def __iter__(self) -> Iterator[Sequence]:
        for level in self._order:
            yield from self._levels[level]

    def __getitem__(self, index: int) -> Sequence:
        if index != 0 or not self.num_waiting:
            raise IndexError("WaitingQueue supports [0] (the head) of a non-empty queue only")
        return self._head_level()[0]

    def _head_level(self) -> deque[Sequence]:
        for level in self._order:
            queue = self._levels[level]
            if queue:
                return queue
        raise IndexError("the waiting queue is empty")

    def _level(self, priority: int) -> deque[Sequence]:
        queue = self._levels.get(priority)
        if queue is None:
            queue = self._levels[priority] = deque()
            self._order = sorted(self._levels)
        return queue

    def append(self, seq: Sequence) -> None:
        """A new request joins the back of its priority level."""
        self._level(seq.priority).append(seq)
        self.num_waiting += 1

    def appendleft(self, seq: Sequence) -> None:
        """A preempted request returns to the front of its priority level."""
        self._level(seq.priority).appendleft(seq)
        self.num_waiting += 1

    def popleft(self) -> Sequence:
        """Remove and return the head (the most urgent, longest waiting request)."""
        seq = self._head_level().popleft()
        self.num_waiting -= 1
        return seq
