"""What a fault run reads of each server at its end: the committed log from
the server's first index (GET /api/log), its applied state (the state
machine's tables in db.sqlite3, read-only) and its snapshot event lines.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

# The runtime's snapshot events on stdout (consensus/runtime_snapshots.py).
TOOK = re.compile(r"Took snapshot through (\d+) \((\d+) bytes\); log compacted")
SENT = re.compile(r"Sent snapshot through (\d+) to (\S+) \((\d+) bytes in ([\d.]+) s\)")
RESTORED = re.compile(r"Restored snapshot through (\d+) from leader \((\d+) bytes\)")


def read_log(cluster, node, page: int = 1000) -> tuple[int, list[dict]]:
    """The node's first index and its committed entries from there.

    The first index is the first entry's (what this read saw: a snapshot
    may compact the log meanwhile, and later pages still follow on), or
    the server's ``first_index`` when it holds no committed entry."""
    entries: list[dict] = []
    first_index = None
    start = 1
    while True:
        r = cluster.get(
            node, "/api/log", timeout=(0.5, 5.0), limit=page, **{"from": start}
        )
        r.raise_for_status()
        body = r.json()
        if first_index is None:
            first_index = body["first_index"]
        batch = body["entries"]
        if not batch:
            break
        entries.extend(batch)
        start = batch[-1]["index"] + 1
    return (entries[0]["index"] if entries else first_index), entries


@dataclass
class AppliedState:
    """A server's state machine as its database holds it."""

    messages: list[str] = field(default_factory=list)  # in apply order
    # (client_id, seq) -> (index, term) of the first entry that carried it,
    # while the client's session keeps it (consensus/sessions.py: at most
    # RAFT_SESSION_MAX_ANSWERS per client, the lowest seqs dropped first).
    sessions: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    last_applied: int = 0

    def to_json(self) -> dict:
        return {
            "last_applied": self.last_applied,
            "messages": self.messages,
            "sessions": [[c, s, i, t] for (c, s), (i, t) in self.sessions.items()],
        }


def read_applied_state(db_path: Path) -> AppliedState:
    """The applied messages, client sessions' answers and last_applied of
    a node's database, in one read transaction (WAL: the node may be
    running)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10.0)
    try:
        connection.execute("BEGIN")
        messages = [
            row[0]
            for row in connection.execute(
                "SELECT command FROM consensus_appliedmessage ORDER BY position"
            )
        ]
        sessions = {
            (client_id, seq): (index, term)
            for client_id, seq, index, term in connection.execute(
                'SELECT client_id, seq, "index", term FROM consensus_clientanswer'
            )
        }
        row = connection.execute(
            "SELECT last_applied FROM consensus_persistentstate"
        ).fetchone()
        connection.execute("COMMIT")
    finally:
        connection.close()
    return AppliedState(messages, sessions, row[0] if row else 0)


def snapshot_events(lines_by_server: dict[str, list[str]]) -> dict:
    """Counts of the snapshot event lines (every incarnation of every
    server): taken, sent by a leader, restored by a follower."""
    by_server = {}
    for server, lines in sorted(lines_by_server.items()):
        counts = {"taken": 0, "sent": 0, "restored": 0}
        for line in lines:
            if TOOK.search(line):
                counts["taken"] += 1
            elif SENT.search(line):
                counts["sent"] += 1
            elif RESTORED.search(line):
                counts["restored"] += 1
        by_server[server] = counts
    totals = {
        kind: sum(c[kind] for c in by_server.values())
        for kind in ("taken", "sent", "restored")
    }
    return {**totals, "by_server": by_server}
