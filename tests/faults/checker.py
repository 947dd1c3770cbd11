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

KINDS = (
    LOST, WRONG_INDEX, DUPLICATE, PHANTOM, FAILED_APPLIED, REALTIME,
    DIVERGENCE, GAP, LOG_TERMS, MULTIPLE_LEADERS, TERM_DECREASE,
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
) -> list[Violation]:
    """Every violation of the run's properties (empty when it passed).

    ``logs`` maps each server to its committed entries (GET /api/log,
    every page); ``leader_lines`` to the terms of its ``Became leader for
    term N`` lines, every incarnation. When the cluster did not settle
    (a liveness failure, reported apart), servers may lag: logs are then
    compared on their common prefix, and acknowledged commands looked for
    in the longest log only.
    """
    report = _Report()
    if not settled and logs:
        shortest = min(len(entries) for entries in logs.values())
        check_logs_agree({s: e[:shortest] for s, e in logs.items()}, report)
        longest = max(logs, key=lambda s: len(logs[s]))
        check_commands(history, {longest: logs[longest]}, report)
    else:
        check_logs_agree(logs, report)
        check_commands(history, logs, report)
    check_realtime(history, logs, report)
    check_leaders(history, leader_lines or {}, report)
    check_terms(history, report)
    return report.violations


def _entry_key(entry: dict) -> tuple:
    return (entry.get("term"), entry.get("type"), entry.get("command"))


def check_logs_agree(logs: dict[str, list[dict]], report: _Report) -> None:
    """All logs agree index by index, with no gaps and the same length;
    terms never go down along a log (each entry's term is its leader's)."""
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
                missing.append(server)
            else:
                seen[_entry_key(entry)].append(server)
        if len(seen) > 1:
            versions = "; ".join(
                f"{servers} hold term={k[0]} {k[1]} {k[2]!r}"
                for k, servers in seen.items()
            )
            report.add(DIVERGENCE, f"index {index}: {versions}")
        elif missing:
            holders = next(iter(seen.values()))
            report.add(
                DIVERGENCE, f"index {index}: {holders} hold it, {missing} do not"
            )


def _positions(entries: list[dict]) -> dict[str, list[dict]]:
    positions: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        if entry.get("type") == "command":
            positions[entry.get("command")].append(entry)
    return positions


def check_commands(
    history: History, logs: dict[str, list[dict]], report: _Report
) -> None:
    """Acknowledged: exactly once, where acknowledged, on every server.
    Failed: never. Unknown: at most once. Nothing no client sent."""
    ops = {op.command: op for op in history.ops}
    phantoms = set()
    for server, entries in sorted(logs.items()):
        positions = _positions(entries)
        for command, found in positions.items():
            if command not in ops:
                phantoms.add(command)
                continue
            op = ops[command]
            where = [e["index"] for e in found]
            if len(found) > 1:
                report.add(
                    DUPLICATE,
                    f"{server}: {command!r} ({op.outcome}) at indexes {where}",
                )
            if op.outcome == FAIL:
                report.add(
                    FAILED_APPLIED,
                    f"{server}: {command!r} failed definitely "
                    f"(status {op.status}, {op.error}) but is at index {where}",
                )
        for op in history.ops:
            if op.outcome != OK:
                continue
            found = positions.get(op.command, [])
            if not found:
                report.add(
                    LOST,
                    f"{server}: {op.command!r} acknowledged at index {op.index} "
                    f"(term {op.term}) at t={op.complete:.3f} is not in the log",
                )
            elif all((e["index"], e["term"]) != (op.index, op.term) for e in found):
                at = [(e["index"], e["term"]) for e in found]
                report.add(
                    WRONG_INDEX,
                    f"{server}: {op.command!r} acknowledged at index {op.index} "
                    f"term {op.term} but logged at (index, term) {at}",
                )
    for command in sorted(phantoms):
        report.add(PHANTOM, f"{command!r} is committed but no client sent it")


def check_realtime(
    history: History, logs: dict[str, list[dict]], report: _Report
) -> None:
    """If A was acknowledged before B was invoked, A's index < B's.

    B is any operation with a known place: acknowledged, or of unknown
    outcome but found in the log (then it took effect after its invoke).
    """
    logged: dict[str, int] = {}
    for entries in logs.values():
        for command, found in _positions(entries).items():
            logged.setdefault(command, found[0]["index"])
    acked = sorted(
        (op for op in history.ops if op.outcome == OK and op.index is not None),
        key=lambda op: op.complete,
    )
    placed = []
    for op in history.ops:
        if op.outcome == OK and op.index is not None:
            placed.append((op.invoke, op.index, op))
        elif op.outcome == UNKNOWN and op.command in logged:
            placed.append((op.invoke, logged[op.command], op))
    placed.sort(key=lambda item: item[0])
    # Sweep B by invoke time, keeping the acknowledged op with the highest
    # index among those completed before B was sent.
    highest = None
    position = 0
    for invoke, index, op_b in placed:
        while position < len(acked) and acked[position].complete < invoke:
            a = acked[position]
            if highest is None or a.index > highest.index:
                highest = a
            position += 1
        if highest is not None and highest.index >= index:
            report.add(
                REALTIME,
                f"{highest.command!r} acknowledged at t={highest.complete:.3f} with "
                f"index {highest.index}, but {op_b.command!r} ({op_b.outcome}) "
                f"invoked later at t={invoke:.3f} has index {index}",
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
