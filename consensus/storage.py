"""Loads and saves the core's durable state through the ORM.

Only the runtime's loop thread writes, so SQLite never queues writers.
Each save is one transaction, fsynced (WAL, synchronous=FULL), except a
save of last_applied alone, which skips the fsync (see _save_last_applied
and docs/DESIGN.md, Durability). What may be sent before a save is
apply_ready's rule (consensus/ready_path.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.management import call_command
from django.db import connection, transaction

from .core.messages import Entry, EntryType
from .core.ready import HardState
from .models import LogEntry, PersistentState


@dataclass(frozen=True, slots=True)
class Restored:
    hard_state: HardState
    entries: list[Entry]
    last_applied: int


class Storage:
    def __init__(self):
        # The highest stored index: appends past it need no delete.
        self._last_index = 0

    @property
    def last_index(self) -> int:
        """The highest index on disk."""
        return self._last_index

    def prepare(self, bootstrap: Sequence[Entry]) -> Restored:
        """Create the schema if needed; on a new data directory write the
        bootstrap log; return what was persisted."""
        call_command("migrate", verbosity=0, interactive=False)
        with transaction.atomic():
            state, created = PersistentState.objects.get_or_create(pk=1)
            if created and bootstrap:
                LogEntry.objects.bulk_create(_to_rows(bootstrap))
        entries = [_to_entry(row) for row in _iter_rows()]
        self._last_index = entries[-1].index if entries else 0
        return Restored(
            hard_state=HardState(state.current_term, state.voted_for),
            entries=entries,
            last_applied=state.last_applied,
        )

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        last_applied: int | None,
    ) -> None:
        """Persist one Ready in one transaction.

        Stored entries at and above entries[0].index are replaced (Raft
        §5.3: a conflicting suffix is deleted before appending).
        """
        if hard_state is None and not entries:
            if last_applied is not None:
                self._save_last_applied(last_applied)
            return
        with transaction.atomic():
            if entries:
                if entries[0].index <= self._last_index:
                    LogEntry.objects.filter(index__gte=entries[0].index).delete()
                LogEntry.objects.bulk_create(_to_rows(entries), batch_size=500)
            fields = {}
            if hard_state is not None:
                fields["current_term"] = hard_state.current_term
                fields["voted_for"] = hard_state.voted_for
            if last_applied is not None:
                fields["last_applied"] = last_applied
            if fields:
                PersistentState.objects.filter(pk=1).update(**fields)
        if entries:
            self._last_index = entries[-1].index

    def _save_last_applied(self, last_applied: int) -> None:
        """Record progress of the state machine alone, without an fsync.

        last_applied is no Raft state: it only keeps a restarted node from
        printing applied entries again. The write reaches the WAL in the OS
        page cache, so it survives the process being killed, and the next
        fsynced transaction makes it durable; only a power cut in between
        can lose it, and then a few lines print twice. Skipping the fsync
        takes one disk flush off the path of every client command on the
        leader (the commit index advances without new entries to write).
        """
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")
            try:
                PersistentState.objects.filter(pk=1).update(last_applied=last_applied)
            finally:
                cursor.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        connection.close()


def _iter_rows():
    return (
        LogEntry.objects.order_by("index")
        .values_list("index", "term", "type", "command", "client_id", "seq")
        .iterator(chunk_size=5000)
    )


def _to_entry(row) -> Entry:
    index, term, type_, command, client_id, seq = row
    return Entry(index, term, EntryType(type_), command, client_id, seq)


def _to_rows(entries: Sequence[Entry]) -> list[LogEntry]:
    return [
        LogEntry(
            index=e.index,
            term=e.term,
            type=e.type.value,
            command=e.command,
            client_id=e.client_id,
            seq=e.seq,
        )
        for e in entries
    ]
