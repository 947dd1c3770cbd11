"""The replicated state machine's parts: the interface a Django project
implements to replicate state of its own (issue 12), in the manner of
hashicorp/raft's FSM (Apply, Snapshot, Restore), over the node's database.

A part owns Django models (its tables) and applies the entries addressed to
it inside the state machine's transaction for the batch, from the entry and
its tables alone, identically on every server. Snapshots copy its tables and
a restore replaces them (consensus/snapshots/tables.py), so a part has no
snapshot code of its own; ``load()`` runs after start and after a restore.
Reads go through ``read()``: one SQLite read transaction that also gives
the applied index, which a linearizable read waits for first
(``NodeRuntime.linearizable_index``, then ``wait_applied``).

Two parts are built in: the toy's messages (COMMAND entries) and the
key-value map (KV entries, consensus/kv.py). A project's own parts are
named in RAFT_STATE_PARTS (dotted paths of StatePart subclasses); their
entries are APP entries whose command is ``{"part": <name>, "data": ...}``,
proposed with ``NodeRuntime.submit_app`` or ``POST /api/apps/<name>``. Every
server of a cluster must run the same parts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from .core.messages import Entry
from .refused import NOT_FOUND, Refused


class StatePart:
    """One part of the state machine. Subclasses set ``name`` and
    ``models``, and implement ``apply``."""

    # Names the part in APP entries and in POST /api/apps/<name>.
    name: str = ""
    # Its tables: a snapshot holds them, a restore replaces them.
    models: tuple = ()

    def load(self) -> None:
        """After start and after a snapshot's restore: read whatever the
        part keeps in memory from its tables."""

    def apply(self, cursor, entry: Entry, data: Any) -> Refused | None:
        """Apply one entry addressed to this part: ``data`` is the entry's
        JSON payload; write with ``cursor``, inside the batch's transaction
        (never commit). Return Refused to change nothing (the proposer gets
        404 or 409; with a client pair, a retry is judged again). A storage
        failure raised here stops the node; any other exception refuses the
        entry (409), its writes undone (StateMachine._apply_project_part),
        but what the part keeps in memory is its own to leave as it was."""
        raise NotImplementedError

    def finish(self, cursor, last_applied: int) -> None:
        """The batch's last writes, after its entries (same transaction)."""

    def read(self, cursor, params: dict) -> Any:
        """Answer GET /api/apps/<name> (``params``: its query string, but
        ``consistency``) with JSON, from the tables on ``cursor`` (one read
        transaction; the caller waits for a linearizable read first)."""
        raise NotImplementedError(f"the part {self.name} answers no reads")

    def rollback(self) -> None:
        """The batch's transaction failed: forget what apply() kept in
        memory for it (nothing of it is stored)."""

    def take_lines(self) -> list[tuple]:
        """Event lines (logging format and arguments) to write once the
        batch has committed."""
        return []


def app_command(part: str, data: Any) -> str:
    """The command of an APP entry for ``part``."""
    return json.dumps({"part": part, "data": data}, separators=(",", ":"))


def parse_app_command(command: str) -> tuple[str, Any]:
    """(part name, data) of an APP entry; ValueError if malformed."""
    payload = json.loads(command)
    if not isinstance(payload, dict) or not isinstance(payload.get("part"), str):
        raise ValueError('an APP entry is {"part": <name>, "data": ...}')
    return payload["part"], payload.get("data")


def load_parts(paths: list[str]) -> dict[str, StatePart]:
    """Instances of the StatePart subclasses at ``paths``, by name."""
    parts: dict[str, StatePart] = {}
    for path in paths:
        cls = import_string(path)
        if not (isinstance(cls, type) and issubclass(cls, StatePart)):
            raise TypeError(f"{path} is not a StatePart subclass")
        part = cls()
        if not part.name or part.name in parts:
            raise ValueError(f"{path}: a part needs a name of its own")
        parts[part.name] = part
    return parts


def unknown_part(name: str) -> Refused:
    return Refused(NOT_FOUND, f"no state part {name!r} on this cluster")


def read(fn: Callable[[Any], Any]) -> tuple[Any, int]:
    """``fn(cursor)`` and the applied index it saw, in one read
    transaction of the node's database."""
    from . import kv

    with kv.read_transaction() as cursor:
        cursor.execute(kv.APPLIED_QUERY)
        (applied,) = cursor.fetchone() or (0,)
        return fn(cursor), applied
