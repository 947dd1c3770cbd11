"""Peer RPC JSON round-trips and rejects malformed input."""

import pytest
from rest_framework.exceptions import ValidationError

from consensus.core.configuration import Configuration
from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotReply,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
)
from consensus.serializers import message_from_dict, message_to_dict

A, B = "127.0.0.1:9990", "127.0.0.1:9991"

MESSAGES = [
    AppendEntries(
        term=3,
        source=A,
        dest=B,
        prev_log_index=4,
        prev_log_term=2,
        entries=(
            Entry(5, 3, EntryType.COMMAND, "I like beer.", "c1", 7, 1_700_000_000_123),
            Entry(6, 3, EntryType.NOOP),
            Entry(7, 3, EntryType.CONFIG, '{"voters":[],"learners":[]}'),
        ),
        leader_commit=4,
        request_id=17,
    ),
    AppendEntriesReply(
        term=3,
        source=B,
        dest=A,
        success=False,
        prev_log_index=4,
        conflict_term=2,
        conflict_index=3,
        request_term=3,
        request_id=17,
    ),
    RequestVote(
        term=5, source=A, dest=B, last_log_index=9, last_log_term=4, pre_vote=True
    ),
    RequestVoteReply(term=5, source=B, dest=A, vote_granted=True, pre_vote=True),
    TimeoutNow(term=2, source=A, dest=B, last_log_index=9, last_log_term=2),
    InstallSnapshot(
        term=4,
        source=A,
        dest=B,
        last_included_index=120,
        last_included_term=3,
        configuration_index=7,
        configuration=Configuration(frozenset({A, B}), frozenset({"127.0.0.1:9992"})),
        request_id=21,
    ),
    InstallSnapshotReply(
        term=4,
        source=B,
        dest=A,
        last_included_index=120,
        request_term=4,
        request_id=21,
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message):
    """Every message survives encoding with every field intact."""
    assert message_from_dict(type(message), message_to_dict(message)) == message


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"term": 1, "source": A},  # missing fields
        {"term": "1", "source": A, "dest": B, "last_log_index": 0, "last_log_term": 0},
        {"term": True, "source": A, "dest": B, "last_log_index": 0, "last_log_term": 0},
        {"term": 1, "source": 5, "dest": B, "last_log_index": 0, "last_log_term": 0},
    ],
)
def test_malformed_request_vote_is_rejected(data):
    with pytest.raises(ValidationError):
        message_from_dict(RequestVote, data)


def test_malformed_entries_are_rejected():
    data = message_to_dict(MESSAGES[0])
    data["entries"][0]["type"] = "bogus"
    with pytest.raises(ValidationError):
        message_from_dict(AppendEntries, data)
    data["entries"] = "nope"
    with pytest.raises(ValidationError):
        message_from_dict(AppendEntries, data)


def test_entry_timestamp_is_carried_and_checked():
    """The leader's timestamp rides with each entry; one from a server that
    sends none is 0, and anything but an integer is refused."""
    data = message_to_dict(MESSAGES[0])
    assert data["entries"][0]["timestamp_ms"] == 1_700_000_000_123
    assert data["entries"][1]["timestamp_ms"] == 0
    del data["entries"][0]["timestamp_ms"]
    assert message_from_dict(AppendEntries, data).entries[0].timestamp_ms == 0
    for bad in ("5", 1.5, True, None):
        data["entries"][0]["timestamp_ms"] = bad
        with pytest.raises(ValidationError):
            message_from_dict(AppendEntries, data)


def test_timeout_now_without_the_leaders_last_entry_is_never_acted_on():
    """A TimeoutNow that does not name the leader's last entry decodes with
    -1, which no log ends with, so its target ignores it (§3.10)."""
    message = message_from_dict(TimeoutNow, {"term": 2, "source": A, "dest": B})
    assert (message.last_log_index, message.last_log_term) == (-1, -1)


@pytest.mark.parametrize(
    "configuration",
    ["ab", {"learners": []}, {"voters": "ab"}, {"voters": [1]}],
)
def test_malformed_snapshot_configuration_is_rejected(configuration):
    data = message_to_dict(MESSAGES[-2])
    data["configuration"] = configuration
    with pytest.raises(ValidationError):
        message_from_dict(InstallSnapshot, data)
