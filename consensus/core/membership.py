"""Which configuration a log holds, and which changes a leader accepts.

Dissertation chapter 4. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .api import ChangeRefusal, MembershipChangeRefused
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
        # Dissertation §5.1: a snapshot holds the latest configuration as of
        # its last included entry; it rules until the log holds a later one.
        return log.snapshot.configuration_index, log.snapshot.configuration
    return index, Configuration.from_json(log.entry(index).command)


def configuration_at(log: RaftLog, index: int) -> tuple[int, Configuration]:
    """The latest configuration as of ``index`` (at or after the log's
    snapshot), and the index of its CONFIG entry: what a snapshot through
    ``index`` records (dissertation §5.1, Figure 5.1)."""
    while index > log.snapshot_index:
        entry = log.entry(index)
        if entry.type is EntryType.CONFIG:
            return index, Configuration.from_json(entry.command)
        index -= 1
    return log.snapshot.configuration_index, log.snapshot.configuration


def configuration_before(log: RaftLog, index: int) -> Configuration:
    """The configuration the CONFIG entry at ``index`` (held in the log)
    replaced: that of the latest CONFIG entry before it, or the log's
    snapshot's (empty without one)."""
    return configuration_at(log, index - 1)[1]


def may_campaign(node) -> bool:
    """May ``node`` (a RaftNode) start an election? Voters campaign (§4.1);
    learners and non-members wait. Except: dissertation §4.2.2, "a server
    that is not part of its own latest configuration should still start new
    elections, as it might still be needed until the Cnew entry is
    committed". A leader that removed itself may lose leadership (check
    quorum, a crash) before the voters of Cnew hold Cnew; they cannot elect
    one of their own if its log is the only up-to-date one. It counts only
    their votes, not its own.
    """
    if node.id in node.configuration.voters:
        return True
    if node.configuration_index <= node.commit_index:
        return False
    previous = configuration_before(node.log, node.configuration_index)
    return node.id in previous.voters


def check_changes(
    entries: Iterable[Entry],
    log: RaftLog,
    commit_index: int,
    configuration_index: int,
    current_term: int,
    configuration: Configuration,
) -> None:
    """Raise MembershipChangeRefused unless the leader may append these
    CONFIG entries in place of ``configuration``, the one it holds now."""
    changes = [e for e in entries if e.type is EntryType.CONFIG]
    if not changes:
        return
    if len(changes) > 1:
        # Dissertation §4.1: one membership change at a time.
        raise MembershipChangeRefused(ChangeRefusal.IN_PROGRESS)
    check_may_change(log, commit_index, configuration_index, current_term)
    try:
        new = Configuration.from_json(changes[0].command)
    except (ValueError, KeyError, TypeError) as e:
        raise MembershipChangeRefused(
            ChangeRefusal.MALFORMED, f"malformed configuration: {e}"
        ) from e
    check_configuration(new, configuration)


def check_may_change(
    log: RaftLog, commit_index: int, configuration_index: int, current_term: int
) -> None:
    """Raise MembershipChangeRefused if the leader may not append any CONFIG
    entry now, whatever the configuration."""
    if configuration_index > commit_index:
        # Dissertation §4.1: the next change only once the previous one is
        # committed.
        raise MembershipChangeRefused(ChangeRefusal.IN_PROGRESS)
    if log.term_at(commit_index) != current_term:
        # Dissertation §4.1 as corrected on raft-dev (2015): a new leader
        # commits an entry of its own term before changing membership.
        raise MembershipChangeRefused(ChangeRefusal.LEADER_NOT_READY)


def check_configuration(new: Configuration, configuration: Configuration) -> None:
    """Raise MembershipChangeRefused unless ``new`` may follow
    ``configuration``."""
    if len(new.voters ^ configuration.voters) > 1:
        # Dissertation §4.1: only single-server changes keep every majority
        # of the old voters overlapping every majority of the new ones;
        # changing two voters at once allows two leaders in one term.
        # Learners do not count towards majorities and may change freely.
        raise MembershipChangeRefused(ChangeRefusal.NOT_SINGLE_SERVER)
    if not new.voters:
        raise MembershipChangeRefused(ChangeRefusal.NO_VOTERS)
