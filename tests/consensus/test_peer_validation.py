"""Every peer message is checked in full at the /raft/ edge (issue 10,
item 1): whatever the core cannot accept is answered 400 or 413 in the
API's error shape and never reaches the runtime's loop."""

import base64
import hashlib
import json

import pytest
from rest_framework.test import APIClient

from consensus.core.messages import AppendEntries, Entry, EntryType, RequestVote
from consensus.serializers import message_to_dict
from consensus.snapshots.wire import chunk_from_dict
from consensus.validation import MAX_PEER_BODY_BYTES, MAX_PEER_INT

from .test_peer_views import A, B, runtime  # noqa: F401 - the fixture

CONFIG = '{"voters":["127.0.0.1:9990","127.0.0.1:9991"],"learners":[]}'


def append(entries=(), term=3, prev_log_index=0, prev_log_term=0, **fields):
    message = AppendEntries(
        term=term,
        source=A,
        dest=B,
        prev_log_index=prev_log_index,
        prev_log_term=prev_log_term,
        entries=tuple(entries),
    )
    return {**message_to_dict(message), **fields}


def vote(**fields):
    message = RequestVote(term=2, source=A, dest=B, last_log_index=1, last_log_term=0)
    return {**message_to_dict(message), **fields}


def post(path, body):
    """POST ``body`` (a dict, or JSON text kept as written) to /raft/."""
    raw = body if isinstance(body, str) else json.dumps(body)
    return APIClient().post(
        f"/raft/{path}", raw.encode("utf-8"), content_type="application/json"
    )


def assert_refused(response, runtime, status=400):  # noqa: F811
    assert response.status_code == status, response.content
    assert response.json()["error"] in ("bad_request", "too_large")
    assert runtime.received == []


def test_a_well_formed_append_entries_passes(runtime):  # noqa: F811
    entries = [Entry(1, 1, EntryType.CONFIG, CONFIG), Entry(2, 3, command="x")]
    assert post("append_entries", append(entries)).status_code == 200


@pytest.mark.parametrize(
    "entries",
    [
        # Issue 10: entries that do not follow on stopped nodes.
        [Entry(99, 1, command="x")],
        [Entry(1, 1, command="x"), Entry(3, 1, command="y")],
        # Terms never decrease along a log, never exceed the leader's.
        [Entry(1, 2, command="x"), Entry(2, 1, command="y")],
        [Entry(1, 4, command="x")],
        # Issue 10: a config entry whose command is not a configuration.
        [Entry(1, 1, EntryType.CONFIG, "not json")],
        [Entry(1, 1, EntryType.CONFIG, "[]")],
        [Entry(1, 1, EntryType.CONFIG, '{"voters": [1]}')],
        [Entry(1, 1, EntryType.CONFIG, '{"voters": ["no port"]}')],
    ],
)
def test_entries_the_core_cannot_accept_are_refused(runtime, entries):  # noqa: F811
    assert_refused(post("append_entries", append(entries)), runtime)


def test_prev_log_term_above_the_term_is_refused(runtime):  # noqa: F811
    assert_refused(post("append_entries", append(prev_log_term=4)), runtime)


@pytest.mark.parametrize(
    "field, value",
    [
        # Issue 10: 2^63 - 1 left every node at that term, and the next
        # election's +1 overflowed SQLite's int64 on every restart.
        ("term", 2**63 - 1),
        ("term", MAX_PEER_INT + 1),
        ("term", -1),
        ("prev_log_index", 2**64),
        ("leader_commit", -5),
        ("request_id", 1.5),
        ("term", True),
    ],
)
def test_integers_out_of_range_are_refused(runtime, field, value):  # noqa: F811
    assert_refused(post("append_entries", append(**{field: value})), runtime)


@pytest.mark.parametrize(
    "field, value",
    [
        # Issue 10: seq 2^63 overflowed SQLite on save.
        ("seq", 2**63),
        ("seq", -1),
        ("timestamp_ms", 2**63),
        ("index", 2**63),
        ("type", "bogus"),
        ("command", 5),
        ("client_id", 7),
    ],
)
def test_entry_fields_out_of_range_are_refused(runtime, field, value):  # noqa: F811
    entry = {
        "index": 1,
        "term": 1,
        "type": "command",
        "command": "x",
        "client_id": "c",
        "seq": 1,
        "timestamp_ms": 0,
    }
    entry[field] = value
    assert_refused(
        post("append_entries", append(entries=[]) | {"entries": [entry]}), runtime
    )


def test_a_lone_surrogate_in_source_is_refused_not_a_500(runtime):  # noqa: F811
    """Issue 10: a lone surrogate in source got a 500."""
    raw = json.dumps(vote()).replace(json.dumps(A), '"\\ud800:9990"')
    assert_refused(post("request_vote", raw), runtime)


def test_a_lone_surrogate_in_a_command_is_refused(runtime):  # noqa: F811
    body = append([Entry(1, 1, command="SURROGATE")])
    raw = json.dumps(body).replace("SURROGATE", "\\udc00")
    assert_refused(post("append_entries", raw), runtime)


@pytest.mark.parametrize(
    "source", ["", "nowhere", ":9990", "127.0.0.1:99999", "http://x:1", 5, None]
)
def test_source_must_be_a_full_address(runtime, source):  # noqa: F811
    assert_refused(post("request_vote", vote(source=source)), runtime)


def test_dest_must_be_this_server(runtime):  # noqa: F811
    assert_refused(post("request_vote", vote(dest="127.0.0.1:9999")), runtime)


def test_a_source_outside_the_configuration_is_accepted(runtime):  # noqa: F811
    """A leader that a lagging member's configuration does not list yet is
    legitimate: only the form of source is checked."""
    response = post("append_entries", append(source="10.1.2.3:7000"))
    assert response.status_code == 200


def test_a_body_over_the_cap_is_413(runtime):  # noqa: F811
    body = append([Entry(1, 1, command="x" * (MAX_PEER_BODY_BYTES + 1))])
    assert_refused(post("append_entries", body), runtime, status=413)


def test_json_nested_too_deep_is_400_not_500(runtime):  # noqa: F811
    assert_refused(post("request_vote", "[" * 100_000), runtime)


def chunk(**fields):
    data = b"snapshot bytes"
    body = {
        "term": 3,
        "source": A,
        "dest": B,
        "last_included_index": 10,
        "last_included_term": 2,
        "configuration": CONFIG,
        "configuration_index": 1,
        "size": len(data),
        "checksum": hashlib.sha256(data).hexdigest(),
        "offset": 0,
        "data": base64.b64encode(data).decode(),
        "done": True,
    }
    return body | fields


def test_a_well_formed_chunk_passes():
    assert chunk_from_dict(chunk()).source == A


@pytest.mark.parametrize(
    "fields",
    [
        {"term": 2**63 - 1},
        {"last_included_index": 2**63},
        {"last_included_term": 4},
        {"configuration_index": 11},
        {"configuration": "not json"},
        {"configuration": '{"voters": ["\\ud800:1"]}'},
        {"source": "\ud800:9990"},
        {"dest": "nowhere"},
    ],
)
def test_a_malformed_chunk_is_refused(fields):
    with pytest.raises(ValueError):
        chunk_from_dict(chunk(**fields))


def test_a_large_legitimate_append_entries_passes(runtime):  # noqa: F811
    """Over Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE (a 500 before) but
    within what a leader may send: 1 MiB of text that JSON escapes."""
    entries = [Entry(1, 1, command="\x01" * (1 << 19))]
    body = append(entries)
    assert len(json.dumps(body)) > 3_000_000
    assert post("append_entries", body).status_code == 200
