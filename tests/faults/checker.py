"""The history checks of a fault run: what every client was told against the
committed logs every server holds once the cluster has settled, plus the
leaders and terms seen during the run. Pure functions on plain data.
"""

from __future__ import annotations

from collections import defaultdict

from .applied_checks import (
    FirstCopies,
    check_applied,
    check_applied_agree,
    command_positions,
    last_index,
)
from .linearizability import KvReport, check_kv
from .violations import (
    APPLIED_DIFFERS,
    APPLIED_TWICE,
    DIVERGENCE,
    DUPLICATE,
    FAILED_APPLIED,
    GAP,
    KINDS,
    LOG_TERMS,
    LOST,
    MAX_PER_KIND,
    MULTIPLE_LEADERS,
    NONLINEARIZABLE,
    PHANTOM,
    REALTIME,
    RETRY_ANSWER,
    STALE_READ,
    TERM_DECREASE,
    WRONG_INDEX,
    Report,
    Violation,
)
from .workload import FAIL, OK, UNKNOWN, History

# The kinds live in violations.py; tests and callers name them checker.LOST.
__all__ = [
    "APPLIED_DIFFERS", "APPLIED_TWICE", "DIVERGENCE", "DUPLICATE",
    "FAILED_APPLIED", "GAP", "KINDS", "LOG_TERMS", "LOST", "MAX_PER_KIND",
    "MULTIPLE_LEADERS", "NONLINEARIZABLE", "PHANTOM", "REALTIME",
    "RETRY_ANSWER", "STALE_READ", "TERM_DECREASE", "WRONG_INDEX", "Violation",
    "check", "check_kv_ops",
]  # fmt: skip


def check(
    history: History,
    logs: dict[str, list[dict]],
    leader_lines: dict[str, list[int]] | None = None,
    settled: bool = True,
    members: list[str] | None = None,
    applied: dict[str, list[str]] | None = None,
    first_index: dict[str, int] | None = None,
    sessions: dict[str, dict[tuple[str, int], tuple[int, int]]] | None = None,
    kv: KvReport | None = None,
) -> list[Violation]:
    """Every violation of the run's properties (empty when it passed).

    ``logs`` maps each server to its committed entries (GET /api/log,
    every page) from its ``first_index``: what a snapshot compacted
    (Raft §7) is below it, not missing, and logs are compared where they
    overlap. ``leader_lines`` maps a server to the terms of its ``Became
    leader for term N`` lines, every incarnation. When the cluster did not
    settle (a liveness failure, reported apart), servers may lag: logs are
    then compared up to the last index every member holds, and
    acknowledged commands looked for on the most advanced server only.

    ``members`` are the servers of the final configuration (default: every
    server in ``logs``): only their logs must hold every committed entry; a
    removed server's log must agree with theirs wherever it has entries.
    ``applied`` maps a server to the messages its state machine applied
    (its last ``Logs [...]`` line, or its database), complete however
    compacted the log: each command once, an acknowledged one the log no
    longer holds included, and its tail the log's commands at their first
    copies. ``sessions`` maps a server to the answers its client sessions
    keep, ``(client_id, seq) -> (index, term)`` of the first copy
    (dissertation §6.3): they place the applied messages in the log. For a
    command without one (none given, or no longer kept) its first copy is
    taken from its acknowledgement or its lowest copy in any log, which is
    exact for uncompacted logs.

    The key-value operations (``history.kv_ops``) are checked by
    ``check_kv_ops``; ``kv`` is its report when the caller ran it already
    (the runner does, to time it and note a search that gave up).
    """
    report = Report()
    members = sorted(logs) if members is None else [m for m in members if m in logs]
    firsts = _first_indexes(logs, first_index or {}, report)
    copies = FirstCopies(history, logs, sessions or {})
    applied = applied or {}
    if not settled and logs:
        pool = members or sorted(logs)
        bound = min(last_index(logs[s], firsts[s]) for s in pool)
        common = {s: [e for e in v if e["index"] <= bound] for s, v in logs.items()}
        check_logs_agree(common, report, members, firsts)
        longest = max(pool, key=lambda s: last_index(logs[s], firsts[s]))
        check_commands(history, logs, report, [longest], firsts, applied, copies)
    else:
        check_logs_agree(logs, report, members, firsts)
        check_commands(history, logs, report, members, firsts, applied, copies)
    check_retries(history, report)
    check_applied(history, logs, applied, report, firsts, copies)
    check_applied_agree(applied, copies, report, members, settled)
    check_realtime(history, logs, report, copies)
    check_leaders(history, leader_lines or {}, report)
    check_terms(history, report)
    if kv is None and history.kv_ops:
        kv = check_kv_ops(history)
    for violation in kv.violations() if kv is not None else []:
        report.add(violation.kind, violation.detail)
    return report.violations


def check_kv_ops(history: History, max_steps: int | None = None) -> KvReport:
    """Linearizability of the key-value operations, per key (each search
    bounded by ``max_steps``), and the stale, leader and monotonic reads
    (linearizability.check_kv). A key whose search ran out of steps has the
    verdict "unknown": not a violation, since nothing was found wrong; the
    runner's report lists it as a note."""
    if max_steps is None:
        return check_kv(history.kv_ops)
    return check_kv(history.kv_ops, max_steps=max_steps)


def _entry_key(entry: dict) -> tuple:
    return (entry.get("term"), entry.get("type"), entry.get("command"))


def _first_indexes(
    logs: dict[str, list[dict]], given: dict[str, int], report: Report
) -> dict[str, int]:
    """Each server's first index: its first entry's, else the one given,
    else 1 (an empty log that was never compacted)."""
    firsts = {}
    for server, entries in logs.items():
        first = entries[0]["index"] if entries else given.get(server, 1)
        if server in given and given[server] != first:
            report.add(
                GAP,
                f"{server}: its log starts at index {first} but its first index "
                f"is {given[server]}",
            )
        firsts[server] = first
    return firsts


def check_logs_agree(
    logs: dict[str, list[dict]],
    report: Report,
    members: list[str] | None = None,
    firsts: dict[str, int] | None = None,
) -> None:
    """All logs agree index by index wherever they overlap, with no gaps;
    a member holds every index from its first index to the last any log
    holds, and a non-member's holds no index that every member lacks but
    one of them should hold; terms never go down along a log (each entry's
    term is its leader's). Below a server's first index its entries are
    compacted, not missing."""
    members = sorted(logs) if members is None else members
    firsts = firsts or {}
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
            if entry is not None:
                seen[_entry_key(entry)].append(server)
            elif server in members and index >= firsts.get(server, 1):
                missing.append(server)
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
    report: Report,
    members: list[str] | None = None,
    firsts: dict[str, int] | None = None,
    applied: dict[str, list[str]] | None = None,
    copies: FirstCopies | None = None,
) -> None:
    """Acknowledged: on every member's log, its first copy where every
    acknowledgement said; below the member's first index (compacted), among
    its applied messages, and its session where the acknowledgements said.
    Failed (every attempt): never. A command at most once per attempt sent
    (a retry may reach the log again: the state machine then answers with
    the first copy), a compacted first copy included. Nothing no client
    sent."""
    members = sorted(logs) if members is None else members
    firsts = firsts or {}
    applied = applied or {}
    copies = copies or FirstCopies(history, logs, {})
    pairs = _pairs(history)
    phantoms = set(copies.phantoms)
    for server, entries in sorted(logs.items()):
        first = firsts.get(server, 1)
        positions = command_positions(entries)
        mine = copies.of(server)
        for command, found in positions.items():
            if command not in pairs:
                phantoms.add(command)
                continue
            pair = pairs[command]
            where = [e["index"] for e in found]
            compacted = command in mine and mine[command][0] < first
            if len(found) + compacted > len(pair.attempts):
                report.add(
                    DUPLICATE,
                    f"{server}: {pair.describe()} at indexes {where}"
                    + (f" and compacted index {mine[command][0]}" if compacted else ""),
                )
            if pair.outcome == FAIL:
                report.add(
                    FAILED_APPLIED,
                    f"{server}: {pair.describe()} failed definitely but is at "
                    f"index {where}",
                )
        sessions = copies.by_server.get(server, {})
        for pair in pairs.values():
            for op in pair.acked:
                answer = sessions.get(op.command)
                if answer is not None and answer != (op.index, op.term):
                    report.add(
                        WRONG_INDEX,
                        f"{server}: {op.command!r} acknowledged at index {op.index} "
                        f"term {op.term} (attempt {op.attempt}) but its session "
                        f"says (index, term) {answer}",
                    )
        if server not in members:
            continue  # a removed server need not hold what came after
        held = set(applied[server]) if server in applied else None
        for pair in pairs.values():
            for op in pair.acked:
                if op.index is not None and op.index < first:
                    # Compacted here (Raft §7): the applied state holds it.
                    if held is not None and op.command not in held:
                        report.add(
                            LOST,
                            f"{server}: {op.command!r} acknowledged at index "
                            f"{op.index} (term {op.term}) at t={op.complete:.3f} "
                            f"is compacted (log from {first}) and not in its "
                            f"applied state ({len(held)} messages)",
                        )
                    continue
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
    for server, messages in sorted(applied.items()):
        for message in dict.fromkeys(messages):
            if message not in pairs:
                phantoms.add(message)
            elif pairs[message].outcome == FAIL:
                report.add(
                    FAILED_APPLIED,
                    f"{server}: {pairs[message].describe()} failed definitely but "
                    f"was applied",
                )
    for command in sorted(phantoms):
        report.add(PHANTOM, f"{command!r} is committed but no client sent it")


def check_retries(history: History, report: Report) -> None:
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


def check_realtime(
    history: History,
    logs: dict[str, list[dict]],
    report: Report,
    copies: FirstCopies | None = None,
) -> None:
    """If A was acknowledged before B was invoked, A's index < B's.

    A and B are commands (every attempt of one (client_id, seq)): A counts
    from its first acknowledgement, B from its first attempt. B is any
    command with a known place: acknowledged, or of unknown outcome but
    found in a log or a session (then it took effect after its first
    invoke), at its first copy.
    """
    copies = copies or FirstCopies(history, logs, {})
    acked, placed = [], []
    for pair in _pairs(history).values():
        first = min(pair.acked, key=lambda op: op.complete, default=None)
        if first is not None and first.index is not None:
            acked.append((first.complete, first.index, pair))
            placed.append((pair.invoke, first.index, pair))
        elif pair.outcome == UNKNOWN:
            where = copies.anywhere(pair.command)
            if where is not None:
                placed.append((pair.invoke, where[0], pair))
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
    history: History, leader_lines: dict[str, list[int]], report: Report
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


def check_terms(history: History, report: Report) -> None:
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
