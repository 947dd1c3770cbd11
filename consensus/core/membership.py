"""Which configuration a log holds, and which changes a leader accepts.

Dissertation chapter 4. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .configuration import Configuration
from .log import RaftLog
from .messages import Entry, EntryType


def latest_configuration(
    log: RaftLog, known_index: int, first_changed: int
) -> tuple[int, Configuration]:
    """The latest CONFIG entry's index and configuration, after the log
    changed from ``first_changed`` on; ``known_index`` was the latest before.

    Dissertation §4.1: a configuration applies from the moment it is
    appended, committed or not, and reverts if it is truncated away. Index
    0 with an empty configuration: the log holds none.
    """
    index = known_index
    if index >= first_changed:
        # Truncated away: fall back to the latest earlier one.
        index = first_changed - 1
        while index >= log.first_index and log.entry(index).type is not (
            EntryType.CONFIG
        ):
            index -= 1
    for entry in log.slice(first_changed, log.last_index + 1):
        if entry.type is EntryType.CONFIG:
            index = entry.index
    if index < log.first_index:
        # Compaction will carry the snapshot's configuration; until then a
        # log without a CONFIG entry belongs to no configuration.
        return 0, Configuration()
    return index, Configuration.from_json(log.entry(index).command)


def configuration_before(log: RaftLog, index: int) -> Configuration:
    """The configuration the CONFIG entry at ``index`` replaced: that of the
    latest CONFIG entry before it, or the empty one if the log holds none."""
    index -= 1
    while index >= log.first_index:
        entry = log.entry(index)
        if entry.type is EntryType.CONFIG:
            return Configuration.from_json(entry.command)
        index -= 1
    return Configuration()


def check_changes(
    entries: Iterable[Entry],
    log: RaftLog,
    commit_index: int,
    configuration_index: int,
    current_term: int,
    configuration: Configuration,
) -> None:
    """Raise ValueError unless the leader may append these CONFIG entries
    in place of ``configuration``, the one it holds now."""
    changes = [e for e in entries if e.type is EntryType.CONFIG]
    if not changes:
        return
    if len(changes) > 1 or configuration_index > commit_index:
        # Dissertation §4.1: one membership change at a time, the next only
        # once the previous one is committed.
        raise ValueError("a configuration change is already in progress")
    if log.term_at(commit_index) != current_term:
        # Dissertation §4.1 as corrected on raft-dev (2015): a new leader
        # commits an entry of its own term before changing membership.
        raise ValueError("leader has not committed an entry of its term yet")
    try:
        new = Configuration.from_json(changes[0].command)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"malformed configuration: {e}") from e
    if len(new.voters ^ configuration.voters) > 1:
        # Dissertation §4.1: only single-server changes keep every majority
        # of the old voters overlapping every majority of the new ones;
        # changing two voters at once allows two leaders in one term.
        # Learners do not count towards majorities and may change freely.
        raise ValueError("a change may add or remove only one voter at a time")
    if not new.voters:
        raise ValueError("a configuration needs at least one voter")
