"""The checks of the servers' applied states (the toy's messages and client
sessions), which outlive log compaction (Raft §7): each command once, in
the order of its first copy, the tail its log's commands, and the same on
every server. Pure functions on plain data; checker.check calls them.
"""

from __future__ import annotations

from collections import defaultdict

from .violations import APPLIED_DIFFERS, APPLIED_TWICE, Report
from .workload import OK, History


def command_positions(entries: list[dict]) -> dict[str, list[dict]]:
    positions: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        if entry.get("type") == "command":
            positions[entry.get("command")].append(entry)
    return positions


def last_index(entries: list[dict], first: int) -> int:
    return entries[-1]["index"] if entries else first - 1


class FirstCopies:
    """Where each command's first copy is, (index, term), as each server
    knows it: its client sessions' answers when given (they outlive
    compaction), else from the acknowledgements and the logs: the lowest
    index known to carry the command. A session keeps a bounded number of
    answers (the lowest seqs go first), so either may be missing for an
    old command. Session pairs no client sent are phantoms."""

    def __init__(self, history: History, logs: dict, sessions: dict):
        names = {(op.client_id, op.seq): op.command for op in history.ops}
        # Key-value writes keep session answers too (their KV entries are
        # checked by linearizability.py, not here).
        kv_writes = {op.request for op in history.kv_ops if op.request}
        self.by_server: dict[str, dict[str, tuple[int, int]]] = {}
        self.phantoms: set[str] = set()
        for server, pairs in sessions.items():
            mine = {}
            for (client_id, seq), answer in pairs.items():
                command = names.get((client_id, seq))
                if command is None and f"{client_id}:{seq}" in kv_writes:
                    continue
                if command is None:
                    self.phantoms.add(f"{client_id}:{seq}")
                else:
                    mine[command] = tuple(answer)
            self.by_server[server] = mine
        known: dict[str, tuple[int, int]] = {}
        for entries in logs.values():
            for command, found in command_positions(entries).items():
                where = (found[0]["index"], found[0]["term"])
                known[command] = min(known.get(command, where), where)
        for op in history.ops:
            if op.outcome == OK and op.index is not None:
                where = (op.index, op.term)
                known[op.command] = min(known.get(op.command, where), where)
        self.known = known
        self._merged: dict[str, dict[str, tuple[int, int]]] = {}

    def of(self, server: str) -> dict[str, tuple[int, int]]:
        """The server's answers, and what is known elsewhere for the rest."""
        if server not in self.by_server:
            return self.known
        if server not in self._merged:
            self._merged[server] = {**self.known, **self.by_server[server]}
        return self._merged[server]

    def anywhere(self, command: str) -> tuple[int, int] | None:
        """The lowest first copy any server's sessions (or the logs) name."""
        found = [m[command] for m in self.by_server.values() if command in m]
        if command in self.known:
            found.append(self.known[command])
        return min(found) if found else None


def check_applied(
    history: History,
    logs: dict[str, list[dict]],
    applied: dict[str, list[str]],
    report: Report,
    firsts: dict[str, int] | None = None,
    copies: FirstCopies | None = None,
) -> None:
    """What each state machine applied is each command once, in the order
    of its first copies' indexes; its prefix is what the server's log no
    longer holds (first copies below its first index), and the rest is
    its log's commands in log order, each only at its first copy (a
    command that reached the log twice is applied once), up to the last
    message applied."""
    firsts = firsts or {}
    copies = copies or FirstCopies(history, logs, {})
    for server, messages in sorted(applied.items()):
        counts: dict[str, int] = defaultdict(int)
        for message in messages:
            counts[message] += 1
        twice = sorted(m for m, n in counts.items() if n > 1)
        if twice:
            report.add(
                APPLIED_TWICE,
                f"{server}: applied more than once: {twice[:10]} "
                f"({len(twice)} messages)",
            )
        if server not in logs:
            continue
        first = firsts.get(server, 1)
        mine = copies.of(server)
        previous = None
        for position, message in enumerate(messages):
            where = mine.get(message)
            if where is None:
                continue  # compacted everywhere, its answer no longer kept
            if previous is not None and where[0] <= previous[1][0]:
                report.add(
                    APPLIED_TWICE,
                    f"{server}: message {position} {message!r} (first copy at "
                    f"{where}) applied after {previous[0]!r} (at {previous[1]})",
                )
            previous = (message, where)
        # The prefix: first copies the log no longer holds.
        split = next(
            (p for p, m in enumerate(messages) if mine.get(m, (0,))[0] >= first),
            len(messages),
        )
        expected = first_copies_in_log(server, logs[server], first, mine, report)
        # Applied after its log was read (an unsettled server): unchecked.
        last = last_index(logs[server], first)
        tail = _applied_through(messages[split:], mine, last)
        if tail == expected[: len(tail)]:
            continue
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(tail, expected, strict=False)) if a != b),
            min(len(tail), len(expected)),
        )
        report.add(
            APPLIED_TWICE,
            f"{server}: applied {len(messages)} messages, {split} of them from "
            f"entries compacted (log from {first}); the rest differ from the "
            f"log's {len(expected)} first copies at message {split + mismatch}: "
            f"{tail[mismatch:mismatch + 3]} vs {expected[mismatch:mismatch + 3]}",
        )


def first_copies_in_log(
    server: str,
    entries: list[dict],
    first: int,
    copies: dict[str, tuple[int, int]],
    report: Report,
) -> list[str]:
    """The log's commands that are their first copy, in log order; checks
    that every other copy follows a first copy that holds the command."""
    held = {e["index"]: e for e in entries}
    expected = []
    for entry in entries:
        if entry.get("type") != "command":
            continue
        command = entry["command"]
        where = copies.get(command)
        if where is None or where[0] == entry["index"]:
            # Its first copy, or not applied yet (the tail must stop before).
            expected.append(command)
            continue
        origin = held.get(where[0])
        if where[0] > entry["index"] or (
            where[0] >= first and (origin or {}).get("command") != command
        ):
            report.add(
                APPLIED_TWICE,
                f"{server}: {command!r} at index {entry['index']} was applied as "
                f"its copy at {where}, which "
                + (
                    "comes after it"
                    if where[0] > entry["index"]
                    else f"holds {(origin or {}).get('command')!r}"
                ),
            )
    return expected


def check_applied_agree(
    applied: dict[str, list[str]],
    copies: FirstCopies,
    report: Report,
    members: list[str],
    settled: bool,
) -> None:
    """Every server applied a prefix of what the most advanced member
    applied (the same messages in the same order), every member all of it
    once settled; and no two servers' sessions answer one command
    differently."""
    pool = [s for s in members if s in applied] or sorted(applied)
    if pool:
        reference = max(pool, key=lambda s: len(applied[s]))
        longest = applied[reference]
        for server, messages in sorted(applied.items()):
            if server == reference:
                continue
            same = messages == longest[: len(messages)]
            if same and not (settled and server in members):
                continue
            if same and len(messages) == len(longest):
                continue
            mismatch = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(messages, longest, strict=False))
                    if a != b
                ),
                min(len(messages), len(longest)),
            )
            report.add(
                APPLIED_DIFFERS,
                f"{server} applied {len(messages)} messages, {reference} "
                f"{len(longest)}; first difference at message {mismatch}: "
                f"{messages[mismatch:mismatch + 3]} vs "
                f"{longest[mismatch:mismatch + 3]}",
            )
    answers: dict[str, tuple[tuple[int, int], str]] = {}
    for server, mine in sorted(copies.by_server.items()):
        for command, answer in mine.items():
            seen = answers.setdefault(command, (answer, server))
            if seen[0] != answer:
                report.add(
                    APPLIED_DIFFERS,
                    f"{command!r}: {seen[1]}'s session says (index, term) "
                    f"{seen[0]}, {server}'s {answer}",
                )


def _applied_through(
    messages: list[str], copies: dict[str, tuple[int, int]], last: int
) -> list[str]:
    """The messages up to the first whose first copy is past ``last``."""
    through = []
    for message in messages:
        if copies.get(message, (0,))[0] > last:
            break
        through.append(message)
    return through
