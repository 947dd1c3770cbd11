"""The recent history of a node's status, for the dashboard's charts (issue
13): one sample a second for the last HISTORY_S seconds, taken by a thread
of its own whether anyone watches or not. No Django."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 1.0
HISTORY_S = 600


@dataclass(frozen=True, slots=True)
class Sample:
    time: float  # time.time()
    commit_index: int
    term: int
    leader: str | None
    # Followers' lag behind the leader's last index, as a leader sees it.
    lag: dict[str, int]


class StatusHistory:
    def __init__(self, status: Callable, interval_s: float = INTERVAL_S):
        self._status = status
        self._interval_s = interval_s
        self._samples: deque[Sample] = deque(maxlen=int(HISTORY_S / interval_s))
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StatusHistory:
        self._thread = threading.Thread(
            target=self._run, name="raft-history", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        status = self._status()
        if status is None:
            return
        lag = {
            p.id: max(0, status.last_log_index - p.match_index) for p in status.peers
        }
        self._samples.append(
            Sample(time.time(), status.commit_index, status.term, status.leader, lag)
        )

    def series(self) -> dict:
        """The charts' data: per second since the previous sample, commits
        and leader changes; and each follower's lag (None where unknown)."""
        samples = list(self._samples)
        times, commits, changes = [], [], []
        peers = sorted({p for s in samples for p in s.lag})
        lag = {p: [] for p in peers}
        for before, after in zip(samples, samples[1:], strict=False):
            span = max(after.time - before.time, 1e-6)
            times.append(round(after.time, 3))
            commits.append(max(0, after.commit_index - before.commit_index) / span)
            changed = after.leader != before.leader or after.term != before.term
            changes.append(1 if changed else 0)
            for p in peers:
                lag[p].append(after.lag.get(p))
        return {"time": times, "commits_per_s": commits, "leader_changes": changes,
                "lag": lag}  # fmt: skip
