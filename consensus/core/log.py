"""RaftLog: one server's log entries in memory (Raft Figure 2, §5.3).

Standard library only. Indices are 1-based as in the paper; the log may
start after a snapshot, so every index is offset by ``snapshot_index``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .messages import NO_SNAPSHOT, Entry, SnapshotMetadata


class ConflictsWithCommitted(ValueError):
    """An AppendEntries whose entries differ from committed ones."""


class RaftLog:
    def __init__(
        self,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMetadata = NO_SNAPSHOT,
    ):
        # Everything through snapshot.last_included_index is compacted away
        # (dissertation chapter 5); that entry's term and the configuration
        # as of it are kept (Figure 5.1). It may precede the node's latest
        # snapshot: the runtime may keep a trailing window (RaftNode.compact).
        # invariant: self._entries[i].index == snapshot_index + 1 + i
        self._entries: list[Entry] = []
        self._set_snapshot(snapshot)
        self.append(entries)

    # snapshot_index, snapshot_term, first_index and last_index are plain
    # attributes, read many times in every step: only _set_snapshot,
    # append and truncate_from change them, with the entries.
    # invariant: last_index == snapshot_index + len(self._entries)

    def _set_snapshot(self, snapshot: SnapshotMetadata) -> None:
        self._snapshot = snapshot
        self.snapshot_index = snapshot.last_included_index
        self.snapshot_term = snapshot.last_included_term
        self.first_index = self.snapshot_index + 1
        self.last_index = self.snapshot_index + len(self._entries)

    @property
    def snapshot(self) -> SnapshotMetadata:
        return self._snapshot

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``, or None if not held.

        Index 0 (before the first entry) has term 0, as Figure 2's
        consistency check for prev_log_index = 0 needs.
        """
        offset = index - self.snapshot_index
        if offset == 0:
            return self.snapshot_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def entry(self, index: int) -> Entry:
        if not self.first_index <= index <= self.last_index:
            raise IndexError(f"no entry at index {index}")
        return self._entries[index - self.first_index]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi, clamped to what is held."""
        lo = max(lo, self.first_index)
        hi = min(hi, self.last_index + 1)
        if lo >= hi:
            return []
        return self._entries[lo - self.first_index : hi - self.first_index]

    def entries_from(self, lo: int, max_count: int, max_bytes: int) -> list[Entry]:
        """Up to max_count entries from ``lo``, of at most max_bytes of
        command text, but always at least one so a large entry still
        moves."""
        batch = self.slice(lo, lo + max(max_count, 1))
        if len(batch) <= 1:
            return batch  # at least one, whatever its size
        size = 0
        for n, entry in enumerate(batch):
            size += len(entry.command.encode())
            if n > 0 and size > max_bytes:
                return batch[:n]
        return batch

    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries that directly follow last_index."""
        last_term = self.last_term
        for entry in entries:
            if entry.index != self.last_index + 1:
                raise ValueError(
                    f"entry {entry.index} does not follow last index "
                    f"{self.last_index}"
                )
            if entry.term < last_term:
                # Raft §5.3: terms never decrease along a log.
                raise ValueError(f"entry {entry.index} has a decreasing term")
            self._entries.append(entry)
            self.last_index = entry.index
            last_term = entry.term

    def compact(self, snapshot: SnapshotMetadata) -> bool:
        """Start the log after ``snapshot``'s last included entry.

        Dissertation Figure 5.3, InstallSnapshot receiver rules 6-7: if the
        log holds that entry with the same term, the entries following it
        are retained (True); otherwise the entire log is discarded (False).
        """
        index = snapshot.last_included_index
        if index < self.snapshot_index:
            raise ValueError(f"index {index} is compacted already")
        retained = self.term_at(index) == snapshot.last_included_term
        if retained:
            del self._entries[: index - self.snapshot_index]
        else:
            self._entries = []
        self._set_snapshot(snapshot)
        return retained

    def truncate_from(self, index: int) -> None:
        """Delete the entry at ``index`` and all that follow it (§5.3)."""
        if index <= self.snapshot_index:
            raise ValueError(f"cannot truncate compacted index {index}")
        del self._entries[index - self.first_index :]
        self.last_index = self.snapshot_index + len(self._entries)

    def is_up_to_date(self, last_log_index: int, last_log_term: int) -> bool:
        """Raft §5.4.1: is a log ending at (last_log_index, last_log_term)
        at least as up-to-date as this one? The later last term wins; with
        equal last terms, the longer log."""
        if last_log_term != self.last_term:
            return last_log_term > self.last_term
        return last_log_index >= self.last_index

    def first_index_of_term(self, index: int) -> int:
        """The first index holding the same term as ``index`` (which must
        be held): the conflict_index of §5.3's fast backtracking."""
        term = self.term_at(index)
        while index > self.first_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding ``term``, or None if no entry has it."""
        index = self.last_index
        while index >= self.first_index:
            entry_term = self.term_at(index)
            if entry_term == term:
                return index
            if entry_term < term:
                # Terms only grow along a log: no earlier entry has it.
                return None
            index -= 1
        if term == self.snapshot_term and self.snapshot_index > 0:
            return self.snapshot_index
        return None

    def conflict_hint(self, prev_log_index: int) -> tuple[int, int]:
        """(conflict_term, conflict_index) for a failed consistency check
        at ``prev_log_index`` (Raft §5.3 fast backtracking): the term we
        hold there and the first index of that term, or (0, last_index + 1)
        if our log is too short."""
        term = self.term_at(prev_log_index)
        if term is None:
            return 0, self.last_index + 1
        return term, self.first_index_of_term(prev_log_index)

    def maybe_append(
        self,
        prev_log_index: int,
        prev_log_term: int,
        entries: Sequence[Entry],
        commit_index: int,
    ) -> list[Entry] | None:
        """Raft Figure 2, AppendEntries receiver rules 2-4.

        None if the consistency check at prev_log_index fails. Otherwise
        the entries newly written (possibly none): matching entries are
        kept, the log is truncated at the first conflicting one and the
        rest appended, so a stale or reordered request whose entries all
        match changes nothing. Compacted indices are committed and match.
        """
        if (
            prev_log_index >= self.snapshot_index
            and self.term_at(prev_log_index) != prev_log_term
        ):
            return None
        first_new = self.find_conflict(entries)
        if not first_new:
            return []
        if first_new <= commit_index:
            # Raft §5.4 Leader Completeness makes this impossible from a
            # real leader; a forged AppendEntries may ask it. The caller
            # refuses it, and nothing committed is ever overwritten.
            raise ConflictsWithCommitted(
                f"refusing to overwrite committed entry {first_new} "
                f"(commit index {commit_index})"
            )
        if first_new <= self.last_index:
            self.truncate_from(first_new)
        new = [e for e in entries if e.index >= first_new]
        self.append(new)
        return new

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first of ``entries`` not held with the same
        term, or 0 if all are held (Raft §5.3). Compacted indices count as
        held: they are committed, so every leader has them."""
        for entry in entries:
            if entry.index > self.snapshot_index and (
                self.term_at(entry.index) != entry.term
            ):
                return entry.index
        return 0
