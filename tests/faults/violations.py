"""The violations a fault run's checks report: their kinds, and the report
that lists them (capped per kind). Plain data, no I/O."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

# The kinds of violation, one per property.
LOST = "lost"  # an acknowledged command missing from a server's log
WRONG_INDEX = "wrong_index"  # acknowledged at one index/term, logged elsewhere
DUPLICATE = "duplicate"  # a command twice in one log
PHANTOM = "phantom"  # a committed command no client sent
FAILED_APPLIED = "failed_applied"  # a definite failure that is in the log
REALTIME = "realtime"  # acknowledged before B was sent, yet indexed after B
DIVERGENCE = "divergence"  # two servers differ at an index, or one lacks it
GAP = "gap"  # a server's log skips an index
LOG_TERMS = "log_terms"  # a log whose terms go down along its indexes
MULTIPLE_LEADERS = "multiple_leaders"  # two leaders for one term
TERM_DECREASE = "term_decrease"  # a server's term went down
# Retries of one (client_id, seq) acknowledged with different answers.
RETRY_ANSWER = "retry_answer"
# What a state machine applied differs from its log's commands once each
# (a message twice, out of order, missing, or not its log's).
APPLIED_TWICE = "applied_twice"
# Two servers' applied states disagree: messages that are not prefixes of
# one another (or members' that differ once settled), or sessions that
# answer one (client_id, seq) differently.
APPLIED_DIFFERS = "applied_differs"
# The key-value operations of one key have no order that a single copy of
# the key and real time allow (linearizability.py).
NONLINEARIZABLE = "nonlinearizable"
# A stale, leader or monotonic read that returned a state the key never had
# by then, or one older than the server had applied or the session had read
# (stale_reads.py).
STALE_READ = "stale_read"

KINDS = (
    LOST, WRONG_INDEX, DUPLICATE, PHANTOM, FAILED_APPLIED, REALTIME,
    DIVERGENCE, GAP, LOG_TERMS, MULTIPLE_LEADERS, TERM_DECREASE,
    RETRY_ANSWER, APPLIED_TWICE, APPLIED_DIFFERS, NONLINEARIZABLE, STALE_READ,
)  # fmt: skip
# Past this many of one kind, the rest are only counted.
MAX_PER_KIND = 20


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self):
        return f"{self.kind}: {self.detail}"


class Report:
    def __init__(self):
        self.violations: list[Violation] = []
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_PER_KIND:
            self.violations.append(Violation(kind, detail))
        elif self.counts[kind] == MAX_PER_KIND + 1:
            self.violations.append(Violation(kind, "(more of this kind not listed)"))
