"""The snapshot policy: a snapshot every RAFT_SNAPSHOT_ENTRIES applied
entries, RAFT_SNAPSHOT_TRAILING entries kept behind it."""

import pytest

from consensus.snapshots import SnapshotPolicy


@pytest.mark.parametrize(
    "last_applied, snapshot_index, expected",
    [
        (0, 0, False),
        (9_999, 0, False),
        (10_000, 0, True),
        (19_999, 10_000, False),
        (20_000, 10_000, True),
        (45_000, 10_000, True),
    ],
)
def test_a_snapshot_every_10000_applied_entries(last_applied, snapshot_index, expected):
    assert SnapshotPolicy().should_snapshot(last_applied, snapshot_index) is expected


@pytest.mark.parametrize(
    "snapshot_index, first_log_index, expected",
    [
        (10_000, 1, 5_000),
        (20_000, 5_001, 15_000),
        # A log shorter than the trailing entries: nothing to delete.
        (4_000, 1, 0),
        (12_000, 8_001, 8_000),
    ],
)
def test_compaction_keeps_5000_entries_behind_the_snapshot(
    snapshot_index, first_log_index, expected
):
    assert SnapshotPolicy().compact_through(snapshot_index, first_log_index) == expected


def test_a_policy_without_trailing_entries_deletes_up_to_the_snapshot():
    assert SnapshotPolicy(entries=100, trailing=0).compact_through(300) == 300


@pytest.mark.parametrize("entries, trailing", [(0, 5), (10, -1)])
def test_a_nonsensical_policy_is_refused(entries, trailing):
    with pytest.raises(ValueError):
        SnapshotPolicy(entries, trailing)


def test_the_settings_give_the_default_policy():
    from consensus.snapshots.policy import policy_from_settings

    assert policy_from_settings() == SnapshotPolicy(10_000, 5_000)
