"""The history checks of a fault run: what every client was told against the
committed logs every server holds once the cluster has settled, plus the
leaders and terms seen during the run. Pure functions on plain data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .workload import FAIL, OK, UNKNOWN, History

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
# What a state machine applied differs from its log's commands once each.
APPLIED_TWICE = "applied_twice"

KINDS = (
    LOST, WRONG_INDEX, DUPLICATE, PHANTOM, FAILED_APPLIED, REALTIME,
    DIVERGENCE, GAP, LOG_TERMS, MULTIPLE_LEADERS, TERM_DECREASE,
    RETRY_ANSWER, APPLIED_TWICE,
)  # fmt: skip
# Past this many of one kind, the rest are only counted.
MAX_PER_KIND = 20


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self):
        return f"{self.kind}: {self.detail}"


class _Report:
    def __init__(self):
        self.violations: list[Violation] = []
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_PER_KIND:
            self.violations.append(Violation(kind, detail))
        elif self.counts[kind] == MAX_PER_KIND + 1:
            self.violations.append(Violation(kind, "(more of this kind not listed)"))


def check(
    history: History,
    logs: dict[str, list[dict]],
    leader_lines: dict[str, list[int]] | None = None,
    settled: bool = True,
    members: list[str] | None = None,
    applied: dict[str, list[str]] | None = None,
) -> list[Violation]:
    """Every violation of the run's properties (empty when it passed).

    ``logs`` maps each server to its committed entries (GET /api/log,
    every page); ``leader_lines`` to the terms of its ``Became leader for
    term N`` lines, every incarnation. When the cluster did not settle
    (a liveness failure, reported apart), servers may lag: logs are then
    compared on their common prefix, and acknowledged commands looked for
    in the longest log only.

    ``members`` are the servers of the final configuration (default: every
    server in ``logs``): only their logs must hold every committed entry; a
    removed server's log must agree with theirs wherever it has entries.
    ``applied`` maps a server to the messages its state machine printed
    last (``Logs [...]``): each command of its log exactly once.
    """
    report = _Report()
    members = sorted(logs) if members is None else [m for m in members if m in logs]
    if not settled and logs:
        in_members = [logs[m] for m in members] or list(logs.values())
        shortest = min(len(entries) for entries in in_members)
        check_logs_agree({s: e[:shortest] for s, e in logs.items()}, report, members)
        longest = max(members or logs, key=lambda s: len(logs[s]))
        check_commands(history, logs, report, [longest])
    else:
        check_logs_agree(logs, report, members)
        check_commands(history, logs, report, members)
    check_retries(history, report)
    check_applied(logs, applied or {}, report)
    check_realtime(history, logs, report)
    check_leaders(history, leader_lines or {}, report)
    check_terms(history, report)
    return report.violations


def _entry_key(entry: dict) -> tuple:
    return (entry.get("term"), entry.get("type"), entry.get("command"))


def check_logs_agree(
    logs: dict[str, list[dict]], report: _Report, members: list[str] | None = None
) -> None:
    """All logs agree index by index, with no gaps; the members' logs have
    the same length, a non-member's holds no index they all lack; terms
    never go down along a log (each entry's term is its leader's)."""
    members = sorted(logs) if members is None else members
    by_index: dict[str, dict[int, dict]] = {}
    for server, entries in sorted(logs.items()):
        indexed = {}
        expected = entries[0]["index"] if entries else None
        previous = None
        for entry in entries:
            if entry["index"] != expected:
                report.add(
                    GAP, f"{server}: index {entry['index']} follows {expected - 1}"
                )
            if previous is not None and entry["term"] < previous["term"]:
                report.add(
                    LOG_TERMS,
                    f"{server}: index {entry['index']} has term {entry['term']} after "
                    f"term {previous['term']} at index {previous['index']}",
                )
            previous = entry
            indexed[entry["index"]] = entry
            expected = entry["index"] + 1
        by_index[server] = indexed
    all_indexes = sorted(
        set().union(*(set(d) for d in by_index.values())) if by_index else []
    )
    for index in all_indexes:
        seen: dict[tuple, list[str]] = defaultdict(list)
        missing = []
        for server, indexed in sorted(by_index.items()):
            entry = indexed.get(index)
            if entry is None:
                if server in members:
                    missing.append(server)
            else:
                seen[_entry_key(entry)].append(server)
        if len(seen) > 1:
            versions = "; ".join(
                f"{servers} hold term={k[0]} {k[1]} {k[2]!r}"
                for k, servers in seen.items()
            )
            report.add(DIVERGENCE, f"index {index}: {versions}")
        elif missing or (
            members and not any(index in by_index.get(m, {}) for m in members)
        ):
            holders = next(iter(seen.values()))
            missing = missing or members
            report.add(
                DIVERGENCE, f"index {index}: {holders} hold it, {missing} do not"
            )


def _positions(entries: list[dict]) -> dict[str, list[dict]]:
    positions: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        if entry.get("type") == "command":
            positions[entry.get("command")].append(entry)
    return positions


class _Pair:
    """Every attempt at one command: a (client_id, seq) pair and its text
    (the workload makes them one-to-one), sent once or retried."""

    def __init__(self, command: str):
        self.command = command
        self.attempts: list = []

    @property
    def acked(self) -> list:
        return [op for op in self.attempts if op.outcome == OK]

    @property
    def outcome(self) -> str:
        """ok if any attempt was acknowledged, fail if every attempt failed
        definitely, else unknown."""
        if self.acked:
            return OK
        if all(op.outcome == FAIL for op in self.attempts):
            return FAIL
        return UNKNOWN

    @property
    def invoke(self) -> float:
        return min(op.invoke for op in self.attempts)

    def describe(self) -> str:
        statuses = ",".join(
            f"{op.outcome}/{op.status or op.error}" for op in self.attempts
        )
        return f"{self.command!r} ({len(self.attempts)} attempt(s): {statuses})"


def _pairs(history: History) -> dict[str, _Pair]:
    pairs: dict[str, _Pair] = {}
    for op in history.ops:
        pairs.setdefault(op.command, _Pair(op.command)).attempts.append(op)
    return pairs


def check_commands(
    history: History,
    logs: dict[str, list[dict]],
    report: _Report,
    members: list[str] | None = None,
) -> None:
    """Acknowledged: on every member's log, its first copy where every
    acknowledgement said. Failed (every attempt): never. A command at most
    once per attempt sent (a retry may reach the log again: the state
    machine then answers with the first copy). Nothing no client sent."""
    members = sorted(logs) if members is None else members
    pairs = _pairs(history)
    phantoms = set()
    for server, entries in sorted(logs.items()):
        positions = _positions(entries)
        for command, found in positions.items():
            if command not in pairs:
                phantoms.add(command)
                continue
            pair = pairs[command]
            where = [e["index"] for e in found]
            if len(found) > len(pair.attempts):
                report.add(DUPLICATE, f"{server}: {pair.describe()} at indexes {where}")
            if pair.outcome == FAIL:
                report.add(
                    FAILED_APPLIED,
                    f"{server}: {pair.describe()} failed definitely but is at "
                    f"index {where}",
                )
        if server not in members:
            continue  # a removed server need not hold what came after
        for pair in pairs.values():
            for op in pair.acked:
                found = positions.get(op.command, [])
                if not found:
                    report.add(
                        LOST,
                        f"{server}: {op.command!r} acknowledged at index {op.index} "
                        f"(term {op.term}) at t={op.complete:.3f} is not in the log",
                    )
                elif (found[0]["index"], found[0]["term"]) != (op.index, op.term):
                    at = [(e["index"], e["term"]) for e in found]
                    report.add(
                        WRONG_INDEX,
                        f"{server}: {op.command!r} acknowledged at index {op.index} "
                        f"term {op.term} (attempt {op.attempt}) but logged at "
                        f"(index, term) {at}",
                    )
    for command in sorted(phantoms):
        report.add(PHANTOM, f"{command!r} is committed but no client sent it")


def check_retries(history: History, report: _Report) -> None:
    """The de-duplication contract, from the answers alone: every attempt
    of one (client_id, seq) that was acknowledged got the same index and
    term (a repeat returns the first answer)."""
    for pair in _pairs(history).values():
        answers = {(op.index, op.term) for op in pair.acked}
        if len(answers) > 1:
            report.add(
                RETRY_ANSWER,
                f"{pair.describe()} acknowledged at different (index, term): "
                f"{sorted(answers)}",
            )


def check_applied(
    logs: dict[str, list[dict]], applied: dict[str, list[str]], report: _Report
) -> None:
    """What each state machine applied (its last ``Logs [...]`` line) is its
    log's commands in log order, each only at its first copy: a command that
    reached the log twice is applied once."""
    for server, messages in sorted(applied.items()):
        expected, seen = [], set()
        for entry in logs.get(server, []):
            if entry.get("type") != "command" or entry.get("command") in seen:
                continue
            seen.add(entry["command"])
            expected.append(entry["command"])
        expected = expected[: len(messages)]
        if messages == expected:
            continue
        counts: dict[str, int] = defaultdict(int)
        for message in messages:
            counts[message] += 1
        twice = sorted(m for m, n in counts.items() if n > 1)
        first = next(
            (
                i
                for i, (a, b) in enumerate(zip(messages, expected, strict=False))
                if a != b
            ),
            min(len(messages), len(expected)),
        )
        report.add(
            APPLIED_TWICE,
            f"{server}: applied {len(messages)} messages, its log has "
            f"{len(expected)} distinct commands; applied more than once: "
            f"{twice[:10]}; first difference at message {first}: "
            f"{messages[first:first + 3]} vs {expected[first:first + 3]}",
        )


def check_realtime(
    history: History, logs: dict[str, list[dict]], report: _Report
) -> None:
    """If A was acknowledged before B was invoked, A's index < B's.

    A and B are commands (every attempt of one (client_id, seq)): A counts
    from its first acknowledgement, B from its first attempt. B is any
    command with a known place: acknowledged, or of unknown outcome but
    found in the log (then it took effect after its first invoke).
    """
    logged: dict[str, int] = {}
    for entries in logs.values():
        for command, found in _positions(entries).items():
            logged.setdefault(command, found[0]["index"])
    acked, placed = [], []
    for pair in _pairs(history).values():
        first = min(pair.acked, key=lambda op: op.complete, default=None)
        if first is not None and first.index is not None:
            acked.append((first.complete, first.index, pair))
            placed.append((pair.invoke, first.index, pair))
        elif pair.outcome == UNKNOWN and pair.command in logged:
            placed.append((pair.invoke, logged[pair.command], pair))
    acked.sort(key=lambda item: item[0])
    placed.sort(key=lambda item: item[0])
    # Sweep B by invoke time, keeping the acknowledged command with the
    # highest index among those acknowledged before B was sent.
    highest = None
    position = 0
    for invoke, index, pair_b in placed:
        while position < len(acked) and acked[position][0] < invoke:
            if highest is None or acked[position][1] > highest[1]:
                highest = acked[position]
            position += 1
        if highest is not None and highest[1] >= index:
            report.add(
                REALTIME,
                f"{highest[2].command!r} acknowledged at t={highest[0]:.3f} with "
                f"index {highest[1]}, but {pair_b.describe()} invoked later at "
                f"t={invoke:.3f} has index {index}",
            )


def check_leaders(
    history: History, leader_lines: dict[str, list[int]], report: _Report
) -> None:
    """At most one leader per term: from sampled statuses and stdout lines."""
    leaders: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for sample in history.samples:
        if sample.role == "leader":
            leaders[sample.term][sample.node].add("status")
    for server, terms in leader_lines.items():
        for term in terms:
            leaders[term][server].add("stdout")
    for term in sorted(leaders):
        if len(leaders[term]) > 1:
            seen = ", ".join(
                f"{server} ({'+'.join(sorted(how))})"
                for server, how in sorted(leaders[term].items())
            )
            report.add(MULTIPLE_LEADERS, f"term {term}: {seen}")


def check_terms(history: History, report: _Report) -> None:
    """No server's sampled term ever decreases (samples are per server in
    the order they were answered)."""
    last: dict[str, tuple[float, int]] = {}
    for sample in history.samples:
        previous = last.get(sample.node)
        if previous is not None and sample.term < previous[1]:
            report.add(
                TERM_DECREASE,
                f"{sample.node}: term {previous[1]} at t={previous[0]:.3f}, "
                f"then {sample.term} at t={sample.time:.3f}",
            )
        if previous is None or sample.term >= previous[1]:
            last[sample.node] = (sample.time, sample.term)
