"""Seeded random streams, one per purpose, all derived from the scenario's seed.

Adding a purpose at the end of ``PURPOSES`` never changes the streams of the existing ones, so a
new feature does not reshuffle the arrivals of an old scenario.
"""

from __future__ import annotations

import numpy as np

PURPOSES: tuple[str, ...] = (
    "arrivals",
    "input_lengths",
    "output_lengths",
    "routing",
    "experts",
    "sampling",
    "prefixes",
    "session_turns",
    "think_times",
)


def stream(seed: int, purpose: str, substream: int | None = None) -> np.random.Generator:
    """The generator for ``purpose``; the same (seed, purpose) always gives the same numbers.

    ``substream`` (e.g. a request class's index) gives an independent stream per item of a purpose.
    """
    try:
        index = PURPOSES.index(purpose)
    except ValueError:
        raise KeyError(f"unknown random purpose {purpose!r}; known: {', '.join(PURPOSES)}") from None
    key = (index,) if substream is None else (index, substream)
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))
