"""How many key-value reads this process served: lately, for the dashboard
(issue 12, a count per second over the last WINDOW_S seconds), and in all,
by consistency level, for /metrics."""

from __future__ import annotations

import threading
import time

from consensus.metrics import KV_READS

WINDOW_S = 10


class ReadMeter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        # second -> reads counted in it, for the last WINDOW_S seconds.
        self._counts: dict[int, int] = {}

    def record(self, reads: int = 1) -> None:
        second = int(self._clock())
        with self._lock:
            self._counts[second] = self._counts.get(second, 0) + reads
            if len(self._counts) > WINDOW_S + 1:
                for old in [s for s in self._counts if s <= second - WINDOW_S]:
                    del self._counts[old]

    def per_second(self) -> float:
        """Reads per second over the last WINDOW_S whole seconds."""
        now = int(self._clock())
        with self._lock:
            total = sum(n for s, n in self._counts.items() if now - WINDOW_S <= s < now)
        return total / WINDOW_S


reads = ReadMeter()


# Looked up once: labels() per read would cost more than the count.
_READS_BY_CONSISTENCY = {
    level: KV_READS.labels(level) for level in ("linearizable", "leader", "stale")
}


def served(consistency: str) -> None:
    """Count one key-value read answered from this node's state: for the
    dashboard's rate and for raft_kv_reads_total{consistency}."""
    reads.record()
    _READS_BY_CONSISTENCY[consistency].inc()
