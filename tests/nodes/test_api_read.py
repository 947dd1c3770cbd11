"""GET /api/status, /api/servers and /api/log against a FakeRuntime."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import status

from consensus.core.messages import EntryType
from consensus.models import LogEntry


def test_status_shape(api, runtime):
    response = api.get("/api/status")
    assert response.status_code == status.HTTP_200_OK
    assert response.json() == {
        "id": "127.0.0.1:9990",
        "role": "leader",
        "term": 2,
        "leader": "127.0.0.1:9990",
        "commit_index": 7,
        "last_applied": 6,
        "last_log_index": 9,
        "servers": [
            {"id": "127.0.0.1:9990", "voter": True},
            {"id": "127.0.0.1:9991", "voter": True},
            {"id": "127.0.0.1:9993", "voter": False},
        ],
        "snapshot_index": 0,
        "first_log_index": 1,
    }


def test_status_reports_the_snapshot_index_and_first_log_index(api, runtime):
    """Beyond the contract's fields: the latest snapshot's last included
    index and the first index the log still holds (Raft §7)."""
    from dataclasses import replace

    runtime.node_status = replace(
        runtime.node_status, snapshot_index=6, first_log_index=4
    )
    body = api.get("/api/status").json()
    assert (body["snapshot_index"], body["first_log_index"]) == (6, 4)


def test_status_with_no_leader_known_says_null(api, runtime):
    from dataclasses import replace

    runtime.node_status = replace(runtime.node_status, role="follower", leader=None)
    body = api.get("/api/status").json()
    assert body["leader"] is None
    assert body["role"] == "follower"


def test_servers_shape(api, runtime):
    """The contract's fields, then each server's role as this node sees it
    (progress fields are null: the fake leader reports no peers)."""
    response = api.get("/api/servers")
    assert response.status_code == status.HTTP_200_OK
    body = response.json()
    assert body["leader"] == "127.0.0.1:9990"
    assert [{"id": s["id"], "voter": s["voter"]} for s in body["servers"]] == [
        {"id": "127.0.0.1:9990", "voter": True},
        {"id": "127.0.0.1:9991", "voter": True},
        {"id": "127.0.0.1:9993", "voter": False},
    ]
    assert [s["role"] for s in body["servers"]] == ["leader", "follower", "learner"]
    assert (body["id"], body["role"], body["term"]) == ("127.0.0.1:9990", "leader", 2)


@pytest.mark.parametrize("path", ["/api/status", "/api/servers", "/api/log"])
def test_reads_without_a_node_are_503(api, path):
    response = api.get(path)
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    assert response.json()["error"] == "no_leader"


# -- /api/log -----------------------------------------------------------------


@pytest.fixture
def log_entries(db):
    """Entries 1-9 in term 1 (entry 1 a noop); the FakeRuntime has
    commit_index 7, so 8 and 9 are not committed."""
    LogEntry.objects.create(index=1, term=1, type=EntryType.NOOP.value, command="")
    for index in range(2, 10):
        LogEntry.objects.create(index=index, term=1, command=f"message {index}")


def indexes(response):
    assert response.status_code == status.HTTP_200_OK, response.content
    return [entry["index"] for entry in response.json()["entries"]]


def test_log_shape_and_committed_entries_only(api, runtime, log_entries):
    body = api.get("/api/log").json()
    assert body["first_index"] == 1
    assert body["commit_index"] == 7
    assert [e["index"] for e in body["entries"]] == [1, 2, 3, 4, 5, 6, 7]
    assert body["entries"][:2] == [
        {"index": 1, "term": 1, "type": "noop", "command": ""},
        {"index": 2, "term": 1, "type": "command", "command": "message 2"},
    ]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"from": 3, "limit": 2}, [3, 4]),
        ({"from": 6}, [6, 7]),
        ({"limit": 1}, [1]),
        ({"from": 8}, []),
        ({"from": 100, "limit": 1000}, []),
        # An empty query value counts as absent, as in a submitted form.
        ({"from": "", "limit": ""}, [1, 2, 3, 4, 5, 6, 7]),
    ],
)
def test_log_pages(api, runtime, log_entries, query, expected):
    assert indexes(api.get("/api/log", query)) == expected


@pytest.mark.parametrize(
    "query",
    [
        {"from": 0},
        {"from": -1},
        {"from": "abc"},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "many"},
    ],
)
def test_log_bad_paging_is_400(api, runtime, log_entries, query):
    response = api.get("/api/log", query)
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert response.json()["error"] == "bad_request"


def test_log_reads_a_bounded_slice(api, runtime, log_entries):
    with CaptureQueriesContext(connection) as queries:
        indexes(api.get("/api/log", {"from": 2, "limit": 3}))
    selects = [q["sql"] for q in queries if "consensus_logentry" in q["sql"]]
    page_query = next(sql for sql in selects if "LIMIT" in sql)
    assert "LIMIT 3" in page_query


def test_log_first_index_is_where_the_compacted_log_starts(api, runtime, db):
    """A compacted log (Raft §7) starts at its first stored index,
    whatever page is asked for."""
    from dataclasses import replace

    runtime.node_status = replace(runtime.node_status, first_log_index=5)
    for index in (5, 6, 7):
        LogEntry.objects.create(index=index, term=1, command="x")
    for query, expected in (({}, [5, 6, 7]), ({"from": 6}, [6, 7]), ({"from": 8}, [])):
        body = api.get("/api/log", query).json()
        assert body["first_index"] == 5
        assert [e["index"] for e in body["entries"]] == expected


def test_log_first_index_follows_a_compaction_after_the_status(api, runtime, db):
    """A page that starts above ``from`` shows the log was compacted after
    the status was read: first_index is where the log starts now."""
    for index in (5, 6, 7):
        LogEntry.objects.create(index=index, term=1, command="x")
    body = api.get("/api/log").json()  # the FakeRuntime's first_log_index: 1
    assert body["first_index"] == 5
    assert [e["index"] for e in body["entries"]] == [5, 6, 7]


def test_log_first_index_is_the_lowest_stored_not_the_cores(api, runtime, db):
    """After a restart the core holds only the entries after its snapshot
    while the trailing window is still stored: first_index is what the
    log holds."""
    from dataclasses import replace

    runtime.node_status = replace(runtime.node_status, first_log_index=7)
    for index in (5, 6, 7):
        LogEntry.objects.create(index=index, term=1, command="x")
    body = api.get("/api/log").json()
    assert body["first_index"] == 5
    assert [e["index"] for e in body["entries"]] == [5, 6, 7]


def test_empty_log_starts_at_1(api, runtime, db):
    from dataclasses import replace

    runtime.node_status = replace(runtime.node_status, commit_index=0, last_log_index=0)
    assert api.get("/api/log").json() == {
        "first_index": 1,
        "commit_index": 0,
        "entries": [],
    }


def test_log_page_is_bounded_in_bytes(api, runtime, db, monkeypatch):
    """Issue 10: 1000 commands of 64 KiB made a 64 MiB page. A page holds
    at most LOG_PAGE_BYTES of command text, always at least one entry; the
    client asks again from the next index."""
    from nodes import views

    monkeypatch.setattr(views, "LOG_PAGE_BYTES", 250)
    for index in range(1, 8):
        LogEntry.objects.create(index=index, term=1, command="x" * 100)
    assert indexes(api.get("/api/log", {"limit": 1000})) == [1, 2]
    assert indexes(api.get("/api/log", {"from": 3})) == [3, 4]
    monkeypatch.setattr(views, "LOG_PAGE_BYTES", 10)
    assert indexes(api.get("/api/log", {"from": 5})) == [5]


@pytest.mark.parametrize("query", [{"from": 2**63}, {"from": 10**30}])
def test_log_from_beyond_sqlite_integers_is_400_not_500(api, runtime, db, query):
    response = api.get("/api/log", query)
    assert response.status_code == status.HTTP_400_BAD_REQUEST, response.content
