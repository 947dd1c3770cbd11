"""The applied-state tables a snapshot holds, and its own metadata table."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import (
    AppliedMessage,
    AppliedState,
    ClientAnswer,
    ClientSession,
    ClusterToken,
    ClusterUser,
    KeyEvent,
    KeyValue,
    LogEntry,
    MembershipChange,
    PersistentState,
)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


def _table(model) -> Table:
    return Table(
        model._meta.db_table, tuple(f.column for f in model._meta.concrete_fields)
    )


# Everything the state machine writes beside PersistentState.last_applied
# (consensus/state_machine.py), which a snapshot records as its index.
APPLIED_TABLES = tuple(
    _table(m)
    for m in (
        AppliedState,
        AppliedMessage,
        ClientSession,
        ClientAnswer,
        ClusterUser,
        ClusterToken,
        MembershipChange,
        KeyValue,
        KeyEvent,
    )
)
APPLIED_STATE = AppliedState._meta.db_table
PERSISTENT_STATE = PersistentState._meta.db_table
LOG_ENTRY = LogEntry._meta.db_table

# In the snapshot file: one row naming what it holds, so a file is checked
# against its manifest before it replaces anything.
META_TABLE = "raft_snapshot"
META_COLUMNS = (
    '("format" integer NOT NULL,'
    ' "last_included_index" integer NOT NULL, "last_included_term" integer NOT NULL,'
    ' "configuration" text NULL, "configuration_index" integer NOT NULL)'
)
# 3: client sessions with an end (ClientSession per client, ClientAnswer,
# AppliedState.session_clock_ms). 4: cluster users and tokens, membership
# changes with who asked (issue 10). 5: the key-value store and its
# history (issue 12).
FORMAT = 5
# A file of an older format still restores: the tables it lacks were
# empty when it was taken, and are emptied.
READABLE_FORMATS = {3: APPLIED_TABLES[:4], 4: APPLIED_TABLES[:7], 5: APPLIED_TABLES}


def part_tables() -> tuple[Table, ...]:
    """The tables of the project's own state parts (RAFT_STATE_PARTS),
    which every snapshot also holds (read when first needed: the parts'
    models load with the apps)."""
    from django.conf import settings

    from ..parts import load_parts

    parts = load_parts(getattr(settings, "RAFT_STATE_PARTS", []))
    return tuple(_table(m) for part in parts.values() for m in part.models)


def all_tables() -> tuple[Table, ...]:
    """Every table a snapshot of this node holds."""
    return APPLIED_TABLES + part_tables()


def tables_in(file_format: int) -> tuple[Table, ...]:
    """The tables a file of ``file_format`` holds (KeyError: unknown)."""
    if file_format == FORMAT:
        return all_tables()
    return READABLE_FORMATS[file_format]
