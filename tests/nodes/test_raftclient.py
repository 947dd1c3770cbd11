"""raftclient.Client against StubServer nodes: requests, retries across
servers, and the exception for each error answer."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

import raftclient
from raftclient import Client, Event, Item

from .stub import Reply

ROOT = Path(__file__).resolve().parents[2]
NO_LEADER = Reply(503, {"error": "no_leader", "detail": "none"}, {"Retry-After": "2"})
TIMEOUT = Reply(504, {"error": "timeout", "detail": "unknown"})
PUT = Reply(200, {"key": "k", "value": "v", "revision": 12, "leader": "x"})


class FakeClock:
    """A monotonic clock that only sleeping moves, so deadlines pass at once."""

    def __init__(self):
        self.now = 0.0
        self.pauses = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client_for(clock):
    """Factory: a Client of the given servers on the fake clock."""
    clients = []

    def make(*servers, **kw):
        client = Client(list(servers), clock=clock, sleep=clock.sleep, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def pairs(*stubs):
    return [(r.body["client_id"], r.body["seq"]) for s in stubs for r in s.received]


def test_importing_raftclient_loads_no_django():
    code = (
        "import sys, raftclient; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_put_sends_the_value_and_a_session_pair_to_the_percent_encoded_key(
    stub_server, client_for
):
    node = stub_server(PUT)
    client = client_for(node.address, token="t0k")
    assert client.put("a/b c?ä%", "v") == Item("a/b c?ä%", "v", 12)
    client.put("k", "w", prev_revision=0)
    first, second = node.received
    assert (first.method, first.path) == ("PUT", "/api/kv/a%2Fb%20c%3F%C3%A4%25")
    assert first.body == {"value": "v", "client_id": client.client_id, "seq": 1}
    assert second.body["prev_revision"] == 0 and second.body["seq"] == 2
    assert first.headers["Authorization"] == "Token t0k"


def test_a_retried_write_repeats_its_pair_on_the_next_server(stub_server, client_for):
    """503 no_leader waits Retry-After and moves on; a 504 and a lost
    connection too: every attempt carries the same (client_id, seq)."""
    a = stub_server(NO_LEADER, Reply(action="drop"))
    b = stub_server(TIMEOUT, PUT)
    client = client_for(a.address, b.address)
    assert client.put("k", "v").revision == 12
    assert [len(a.received), len(b.received)] == [2, 2]
    assert set(pairs(a, b)) == {(client.client_id, 1)}
    client.put("k", "v")  # the server that answered is asked first
    assert len(b.received) == 3 and pairs(b)[-1] == (client.client_id, 2)


def test_retry_after_is_honoured(stub_server, client_for, clock):
    node = stub_server(NO_LEADER, PUT)
    client_for(node.address).put("k", "v")
    assert clock.pauses == [2.0]


def test_an_unreachable_first_server_is_skipped(
    stub_server, refused_address, client_for
):
    node = stub_server(Reply(200, {"key": "k", "value": "v", "revision": 3,
                                   "applied_index": 5}))  # fmt: skip
    client = client_for(refused_address, node.address)
    assert client.get("k") == Item("k", "v", 3, applied_index=5)
    assert client.server == node.address
    assert node.received[0].path == "/api/kv/k?consistency=linearizable"


def test_no_server_reachable_is_unreachable(refused_address, client_for):
    with pytest.raises(raftclient.Unreachable) as raised:
        client_for(refused_address).put("k", "v")
    assert raised.value.status is None
    assert "connection refused" in str(raised.value)


def test_a_lost_write_then_no_server_is_outcome_unknown(
    stub_server, refused_address, client_for
):
    node = stub_server(Reply(action="drop"))
    with pytest.raises(raftclient.OutcomeUnknown):
        client_for(node.address, refused_address).delete("k")


def test_504_until_the_deadline_is_outcome_unknown(stub_server, client_for):
    node = stub_server(TIMEOUT)
    with pytest.raises(raftclient.OutcomeUnknown) as raised:
        client_for(node.address, timeout=1).put("k", "v")
    assert (raised.value.status, raised.value.code) == (504, "timeout")
    assert len(set(pairs(node))) == 1 and len(node.received) > 1


def test_no_leader_until_the_deadline_is_unavailable(stub_server, client_for):
    node = stub_server(NO_LEADER)
    with pytest.raises(raftclient.Unavailable) as raised:
        client_for(node.address, timeout=5).put("k", "v")
    assert (raised.value.status, raised.value.code) == (503, "no_leader")


def test_a_read_retries_a_504_and_times_out_as_unavailable(stub_server, client_for):
    node = stub_server(TIMEOUT)
    with pytest.raises(raftclient.Unavailable):
        client_for(node.address, timeout=1).get("k")


def test_a_409_to_a_retry_is_outcome_unknown(stub_server, client_for):
    """The session ended: the retry is refused, the first attempt's fate
    is unknown."""
    node = stub_server(TIMEOUT, Reply(409, {"error": "conflict", "detail": "ended"}))
    with pytest.raises(raftclient.OutcomeUnknown):
        client_for(node.address).put("k", "v")


@pytest.mark.parametrize(
    "status, code, exception",
    [
        (400, "bad_request", raftclient.BadRequest),
        (401, "unauthorized", raftclient.Unauthorized),
        (403, "forbidden", raftclient.Forbidden),
        (404, "not_found", raftclient.NotFound),
        (409, "conflict", raftclient.Conflict),
        (410, "compacted", raftclient.Compacted),
        (413, "too_large", raftclient.TooLarge),
        (500, "internal_error", raftclient.OutcomeUnknown),
    ],
)
def test_each_error_code_has_its_exception(
    stub_server, client_for, status, code, exception
):
    node = stub_server(Reply(status, {"error": code, "detail": "Some  words."}))
    with pytest.raises(exception) as raised:
        client_for(node.address).put("k", "v")
    assert (raised.value.status, raised.value.code) == (status, code)
    assert len(node.received) == 1
    assert str(raised.value).startswith(code.replace("_", " ") + ":")


def test_precondition_failed_carries_the_current_revision(stub_server, client_for):
    node = stub_server(
        Reply(412, {"error": "precondition_failed", "detail": "no",
                    "current_revision": 7})  # fmt: skip
    )
    with pytest.raises(raftclient.PreconditionFailed) as raised:
        client_for(node.address).cas("k", "v", 3)
    assert raised.value.current_revision == 7
    assert node.received[0].body["prev_revision"] == 3


def test_delete_sends_its_pair_and_prev_revision_as_query(stub_server, client_for):
    node = stub_server(Reply(200, {"key": "k/1", "revision": 9}))
    client = client_for(node.address)
    assert client.delete("k/1", prev_revision=4) == 9
    [received] = node.received
    assert received.method == "DELETE"
    assert received.path == (
        f"/api/kv/k%2F1?client_id={client.client_id}&seq=1&prev_revision=4"
    )


def test_list_follows_more_and_after(stub_server, client_for):
    def page(keys, more):
        items = [{"key": k, "value": k.upper(), "revision": 1} for k in keys]
        return Reply(200, {"items": items, "more": more, "applied_index": 4})

    node = stub_server(page(["p/a", "p/b"], True), page(["p/c"], False))
    found = list(client_for(node.address).list("p/", consistency="stale", page=2))
    assert [(i.key, i.value) for i in found] == [("p/a", "P/A"), ("p/b", "P/B"),
                                                 ("p/c", "P/C")]  # fmt: skip
    assert [r.path for r in node.received] == [
        "/api/kv?prefix=p%2F&limit=2&consistency=stale",
        "/api/kv?prefix=p%2F&limit=2&consistency=stale&after=p%2Fb",
    ]


def test_watch_resumes_after_the_covered_revision(stub_server, client_for):
    put = {"type": "put", "key": "w/a", "value": "1", "revision": 5}
    gone = {"type": "delete", "key": "w/a", "value": None, "revision": 8}
    node = stub_server(
        Reply(200, {"events": [put], "revision": 6}),
        Reply(200, {"events": [], "revision": 7}),
        Reply(200, {"events": [gone], "revision": 9}),
    )
    events = list(itertools.islice(client_for(node.address).watch("w/", timeout=5), 2))
    assert events == [Event("put", "w/a", "1", 5), Event("delete", "w/a", None, 8)]
    assert [r.path for r in node.received] == [
        "/api/watch?prefix=w%2F&timeout=5",
        "/api/watch?prefix=w%2F&timeout=5&after=6",
        "/api/watch?prefix=w%2F&timeout=5&after=7",
    ]


def test_submit_commits_a_command(stub_server, client_for):
    node = stub_server(Reply(200, {"index": 7, "term": 2, "leader": "L",
                                   "forwarded": True}))  # fmt: skip
    commit = client_for(node.address).submit("I like beer.")
    assert (commit.server, commit.index, commit.term, commit.forwarded) == (
        node.address, 7, 2, True,
    )  # fmt: skip
    assert node.received[0].body["command"] == "I like beer."


@pytest.mark.parametrize(
    "servers, kw",
    [([], {}), (["http://x:1"], {}), ([":1"], {"timeout": 0})],
)
def test_bad_arguments_are_value_errors(servers, kw):
    with pytest.raises(ValueError):
        Client(servers, **kw)


def test_a_200_that_is_not_json_to_a_write_is_outcome_unknown(stub_server, client_for):
    node = stub_server(Reply(200, b"<html>proxy</html>"))
    with pytest.raises(raftclient.OutcomeUnknown):
        client_for(node.address).put("k", "v")
    with pytest.raises(raftclient.RaftError) as raised:
        client_for(node.address).get("k")
    assert raised.value.code == "unexpected_answer"
