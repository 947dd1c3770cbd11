"""RaftLog: append, truncate, term_at, slicing, the §5.3 and §5.4.1 rules."""

import pytest

from consensus.core.log import ConflictsWithCommitted, RaftLog
from consensus.core.messages import Entry, SnapshotMetadata


def entries(*terms, start=1):
    return [
        Entry(start + n, term, command=f"c{start + n}") for n, term in enumerate(terms)
    ]


def test_empty_log():
    """An empty log ends at index 0, term 0, which every leader matches."""
    log = RaftLog()
    assert (log.first_index, log.last_index, log.last_term) == (1, 0, 0)
    assert log.term_at(0) == 0
    assert log.term_at(1) is None


def test_append_and_term_at():
    log = RaftLog(entries(1, 1, 2))
    assert log.last_index == 3
    assert log.last_term == 2
    assert [log.term_at(i) for i in range(5)] == [0, 1, 1, 2, None]
    assert log.entry(2).command == "c2"
    with pytest.raises(IndexError):
        log.entry(4)


def test_append_must_follow_last_index():
    log = RaftLog(entries(1))
    with pytest.raises(ValueError):
        log.append(entries(1, start=3))


def test_append_rejects_decreasing_term():
    """Raft §5.3: terms never decrease along a log."""
    log = RaftLog(entries(2))
    with pytest.raises(ValueError):
        log.append(entries(1, start=2))


def test_truncate_from_deletes_the_index_and_all_after():
    log = RaftLog(entries(1, 1, 2, 2))
    log.truncate_from(3)
    assert [e.index for e in log] == [1, 2]
    assert log.last_term == 1


def test_slice_is_half_open_and_clamped():
    log = RaftLog(entries(1, 1, 2, 2))
    assert [e.index for e in log.slice(2, 4)] == [2, 3]
    assert [e.index for e in log.slice(0, 99)] == [1, 2, 3, 4]
    assert log.slice(5, 9) == []


def test_entries_from_bounded_by_count_and_bytes():
    log = RaftLog([Entry(i, 1, command="x" * 10) for i in range(1, 11)])
    assert len(log.entries_from(1, max_count=3, max_bytes=1 << 20)) == 3
    assert len(log.entries_from(1, max_count=100, max_bytes=25)) == 2
    # A single entry larger than the byte bound still goes, alone.
    assert len(log.entries_from(1, max_count=100, max_bytes=1)) == 1
    assert log.entries_from(11, max_count=100, max_bytes=1 << 20) == []


def test_log_after_a_snapshot_is_offset():
    """Entries up to snapshot_index are compacted; their last term stays."""
    log = RaftLog(entries(3, 4, start=6), SnapshotMetadata(5, 3))
    assert (log.first_index, log.last_index) == (6, 7)
    assert log.term_at(5) == 3
    assert log.term_at(4) is None
    assert log.term_at(7) == 4
    assert [e.index for e in log.slice(1, 99)] == [6, 7]
    with pytest.raises(ValueError):
        log.truncate_from(5)
    empty = RaftLog(snapshot=SnapshotMetadata(5, 3))
    assert (empty.last_index, empty.last_term) == (5, 3)


def test_first_and_last_index_of_term():
    log = RaftLog(entries(1, 1, 4, 4, 4, 6))
    assert log.first_index_of_term(5) == 3
    assert log.first_index_of_term(1) == 1
    assert log.last_index_of_term(4) == 5
    assert log.last_index_of_term(5) is None
    assert log.last_index_of_term(7) is None


@pytest.mark.parametrize(
    "last_log_index, last_log_term, up_to_date",
    [
        (3, 2, True),  # identical
        (4, 2, True),  # same last term, longer
        (2, 2, False),  # same last term, shorter
        (1, 3, True),  # later last term wins however short
        (9, 1, False),  # earlier last term loses however long
    ],
)
def test_is_up_to_date_section_5_4_1(last_log_index, last_log_term, up_to_date):
    """Raft §5.4.1: compare last terms first, then lengths."""
    log = RaftLog(entries(1, 1, 2))
    assert log.is_up_to_date(last_log_index, last_log_term) is up_to_date


def test_maybe_append_fails_the_consistency_check():
    log = RaftLog(entries(1, 1, 2))
    assert log.maybe_append(3, 1, entries(3, start=4), commit_index=0) is None
    assert log.maybe_append(5, 2, [], commit_index=0) is None
    assert log.last_index == 3


def test_maybe_append_truncates_at_the_first_conflict():
    log = RaftLog(entries(1, 1, 2, 2))
    new = log.maybe_append(1, 1, entries(1, 3, 3, start=2), commit_index=1)
    assert [e.index for e in new] == [3, 4]
    assert [e.term for e in log] == [1, 1, 3, 3]


def test_maybe_append_keeps_a_longer_log_when_all_entries_match():
    """A stale or reordered AppendEntries never truncates (§5.3)."""
    log = RaftLog(entries(1, 1, 2, 2))
    assert log.maybe_append(1, 1, entries(1, 2, start=2), commit_index=0) == []
    assert log.last_index == 4


def test_maybe_append_refuses_to_overwrite_committed_entries():
    """A refusal the caller can answer (a ValueError, not a crash), and the
    log is unchanged."""
    log = RaftLog(entries(1, 1, 2))
    with pytest.raises(ConflictsWithCommitted):
        log.maybe_append(1, 1, entries(3, start=2), commit_index=2)
    assert [e.term for e in log] == [1, 1, 2]


def test_conflict_hint():
    """§5.3 fast backtracking: the conflicting term and its first index,
    or (0, last_index + 1) when the log is too short."""
    log = RaftLog(entries(1, 2, 2, 2))
    assert log.conflict_hint(3) == (2, 2)
    assert log.conflict_hint(7) == (0, 5)


def assert_bounds_hold(log):
    """snapshot_index, first_index and last_index are kept as attributes
    (read in every step); they must agree with the entries held."""
    held = list(log)
    assert log.snapshot_index == log.snapshot.last_included_index
    assert log.snapshot_term == log.snapshot.last_included_term
    assert log.first_index == log.snapshot_index + 1
    assert log.last_index == log.snapshot_index + len(held)
    assert [e.index for e in held] == list(range(log.first_index, log.last_index + 1))
    assert log.last_term == (held[-1].term if held else log.snapshot_term)


def test_bounds_follow_every_change_of_the_log():
    log = RaftLog(entries(1, 1, 2, 2, 3))
    assert_bounds_hold(log)
    log.truncate_from(4)  # §5.3
    assert_bounds_hold(log)
    log.append(entries(4, 4, start=4))
    assert_bounds_hold(log)
    assert log.maybe_append(2, 1, entries(5, start=3), commit_index=0)
    assert_bounds_hold(log)
    assert log.last_index == 3
    # Figure 5.3 rules 6-7: keep what follows a matching entry, or all goes.
    assert log.compact(SnapshotMetadata(2, 1))
    assert_bounds_hold(log)
    assert log.last_index == 3
    assert not log.compact(SnapshotMetadata(9, 7))
    assert_bounds_hold(log)
    assert (log.first_index, log.last_index, log.term_at(9)) == (10, 9, 7)
    log.append(entries(7, 8, start=10))
    assert_bounds_hold(log)
    # An append refused halfway keeps what it appended before.
    with pytest.raises(ValueError):
        log.append([Entry(12, 8), Entry(14, 8)])
    assert_bounds_hold(log)
    assert log.last_index == 12
