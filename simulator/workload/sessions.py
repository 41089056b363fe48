"""Multi-turn sessions: conversations whose earlier turns are the shared prefix of later ones.

``workload.sessions: {num_turns, think_time_s, think_time_dist}``: the workload's arrivals (and
``num_requests``) start sessions. A session of ``T`` turns has user messages ``m_1 .. m_T``
(``input_tokens``) and answers ``a_1 .. a_T`` (``output_tokens``); turn ``t``'s prompt is the whole
conversation before it plus its message::

    prompt_t = (m_1 + a_1) + ... + (m_{t-1} + a_{t-1}) + m_t,   prefix_tokens_t = prompt_t - m_t

Every turn of session ``s`` carries ``prefix_id = s``, so with prefix caching a turn finds the
conversation so far cached on the replica that served the turn before (``prefix_affinity`` sends it
there). Turn ``t + 1`` is issued ``think_s`` after turn ``t`` ends (the engine does this, following
``next_turn``); until then its row's ``arrival_s`` is the session's start. Draws come from the seeded
streams "session_turns", "input_lengths", "output_lengths" and "think_times". A prompt is capped at
``MAX_TOKENS_PER_REQUEST`` (a longer conversation is rejected by ``max_model_len`` long before).
"""

from __future__ import annotations

import numpy as np

from simulator.config import MAX_TOKENS_PER_REQUEST, WorkloadConfig
from simulator.rng import stream
from simulator.workload.lengths import sample_lengths


def session_columns(
    workload: WorkloadConfig, start_s: np.ndarray, seed: int, substream: int | None
) -> dict[str, np.ndarray]:
    """One row per turn, sessions in order of start: the request table's columns (see the docstring).

    Keys: arrival_s, input_tokens, output_tokens, prefix_id, prefix_tokens, next_turn (the row of the
    session's next turn, -1 after its last), think_s (think time before the turn; 0 for a first turn).
    """
    sessions = workload.sessions
    assert sessions is not None
    num_sessions = len(start_s)
    turns = sample_lengths(sessions.num_turns, num_sessions, stream(seed, "session_turns", substream))
    num_rows = int(turns.sum())
    session = np.repeat(np.arange(num_sessions, dtype=np.int64), turns)
    first_row = np.concatenate([[0], np.cumsum(turns)[:-1]]).astype(np.int64)
    is_first = np.zeros(num_rows, dtype=bool)
    is_first[first_row] = True
    message = sample_lengths(workload.input_tokens, num_rows, stream(seed, "input_lengths", substream))
    answer = sample_lengths(workload.output_tokens, num_rows, stream(seed, "output_lengths", substream))
    # the conversation before each turn: a running sum of (message + answer), restarted per session
    exchanged = np.cumsum(message + answer)
    history = exchanged - (message + answer) - (exchanged - (message + answer))[first_row][session]
    history = np.minimum(history, MAX_TOKENS_PER_REQUEST - message)
    next_turn = np.arange(1, num_rows + 1, dtype=np.int64)
    next_turn[np.concatenate([first_row[1:], [num_rows]]) - 1] = -1
    think_rng = stream(seed, "think_times", substream)
    if sessions.think_time_dist == "fixed":
        think_s = np.full(num_rows, sessions.think_time_s)
    else:
        think_s = think_rng.exponential(sessions.think_time_s, size=num_rows)
    think_s[is_first] = 0.0
    return {
        "arrival_s": np.asarray(start_s, dtype=np.float64)[session],
        "input_tokens": history + message,
        "output_tokens": answer,
        "prefix_id": session.astype(np.int32),
        "prefix_tokens": history,
        "next_turn": next_turn,
        "think_s": think_s,
    }
