"""Catch-up rounds for a server being added (dissertation §4.2.1).

Standard library only, no clock: the runtime feeds it time.monotonic()
seconds, the simulation ticks.
"""

from __future__ import annotations


class CatchUpRounds:
    """Dissertation §4.2.1: is a new server caught up? On any clock (the
    runtime's seconds, a simulation's ticks).

    Each round replicates the leader's log up to its last index when the
    round began; the server is caught up once a round takes less than
    ``round_limit`` (an election timeout), and given up on at ``deadline``.
    """

    def __init__(self, round_limit: float, deadline: float):
        self.round_limit = round_limit
        self.deadline = deadline
        self.rounds = 0
        self._target: int | None = None
        self._started = 0.0

    def observe(self, now: float, last_index: int, match_index: int) -> bool | None:
        """True: caught up; False: past the deadline; None: not yet."""
        if self._target is None:
            self._begin(now, last_index)
        while match_index >= self._target:
            if now - self._started < self.round_limit:
                return True
            self._begin(now, last_index)
        if now >= self.deadline:
            return False
        return None

    def _begin(self, now: float, last_index: int) -> None:
        self.rounds += 1
        self._target, self._started = last_index, now
