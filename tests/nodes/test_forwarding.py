"""nodes.forwarding's leader_or_forward, the one path of every client write
(commands and membership), and nodes.local's LocalNode, which takes that
path in process: against a FakeRuntime and a recording forwarder."""

import dataclasses

import pytest
from django.apps import apps

from consensus.errors import NotLeader
from consensus.membership import LeadershipMoved
from consensus.status import CommandResult
from nodes.auth import Caller
from nodes.client import Answer, ClientError
from nodes.errors import TimedOut, Unavailable
from nodes.forwarding import (
    Write,
    answer_in_process,
    leader_or_forward,
    member_leader,
    process_forwarder,
    relay,
)
from nodes.local import LocalNode, node_client
from nodes.membership_views import LeaderView, ServersView
from nodes.views import CommandsView

from .stub import Reply

LEADER = "127.0.0.1:9991"
WRITE = Write("POST", "/api/things", {"thing": 1}, 5.0, kind="thing", undone="none")


class RecordingForwarder:
    """Answers every forward with ``answer`` and records the calls."""

    def __init__(self, answer=None):
        self.answer = answer or Answer(200, {"done": True, "forwarded": False}, None)
        self.calls = []

    def forward(
        self, leader_id, method, path, body, timeout_s, accept=None, caller=None
    ):
        self.calls.append((leader_id, method, path, body, timeout_s, accept))
        self.caller = caller
        return self.answer


def refusing(exc):
    def action(runtime):
        raise exc

    return action


def test_the_leader_runs_the_action_itself(runtime):
    forwarder = RecordingForwarder()
    answer = leader_or_forward(
        runtime,
        lambda rt: {"by": rt.node_id},
        WRITE,
        forwarder=forwarder,
        caller=Caller(forwarded=False),
    )
    assert answer == Answer(200, {"by": runtime.node_id}, None)
    assert forwarder.calls == []


def test_a_follower_forwards_once_and_relays_the_answer(runtime):
    accept = object()
    write = Write("DELETE", "/api/things/1", None, 7.0, accept=accept)
    forwarder = RecordingForwarder(
        Answer(503, {"error": "no_leader", "detail": "busy"}, "3")
    )
    answer = leader_or_forward(
        runtime,
        refusing(NotLeader(LEADER)),
        write,
        forwarder=forwarder,
        caller=Caller(forwarded=False),
    )
    assert forwarder.calls == [(LEADER, "DELETE", "/api/things/1", None, 7.0, accept)]
    assert answer == Answer(
        503, {"error": "no_leader", "detail": "busy", "forwarded": True}, "3"
    )


def never_called(runtime):
    raise AssertionError("the loop was asked, though the status names the leader")


def test_a_follower_that_knows_its_leader_forwards_without_asking_its_loop(runtime):
    runtime.node_status = dataclasses.replace(
        runtime.node_status, role="follower", leader=LEADER
    )
    forwarder = RecordingForwarder()
    answer = leader_or_forward(
        runtime, never_called, WRITE, forwarder=forwarder, caller=Caller()
    )
    assert [call[0] for call in forwarder.calls] == [LEADER]
    assert answer.body == {"done": True, "forwarded": True}


@pytest.mark.parametrize("leader", [None, "127.0.0.1:9990"])
def test_a_follower_without_another_leader_in_its_status_asks_its_loop(runtime, leader):
    # No leader known, or (a status a step behind) itself: the loop decides.
    runtime.node_status = dataclasses.replace(
        runtime.node_status, role="candidate", leader=leader
    )
    forwarder = RecordingForwarder()
    answer = leader_or_forward(
        runtime, lambda rt: {"by": "loop"}, WRITE, forwarder=forwarder, caller=Caller()
    )
    assert answer == Answer(200, {"by": "loop"}, None)
    assert forwarder.calls == []


@pytest.mark.parametrize(
    "leader, forwarded, named",
    [
        (None, False, None),  # no leader known
        (LEADER, True, LEADER),  # a forwarded request is never sent on again
        ("127.0.0.1:9990", False, "127.0.0.1:9990"),  # a stale hint: itself
    ],
)
def test_no_forward_is_503_no_leader(runtime, leader, forwarded, named):
    forwarder = RecordingForwarder()
    with pytest.raises(Unavailable) as raised:
        leader_or_forward(
            runtime,
            refusing(NotLeader(leader)),
            WRITE,
            forwarder=forwarder,
            caller=Caller(forwarded=forwarded),
        )
    assert forwarder.calls == []
    assert raised.value.extra == {"leader": named}
    assert raised.value.retry_after_s == 1
    assert "none. Retry later." in str(raised.value.detail)


def test_a_leader_that_handed_over_forwards_even_a_forwarded_request(runtime):
    """Dissertation §3.10: a leader removing itself hands over first, and
    the new leader carries the removal out."""
    forwarder = RecordingForwarder()
    answer = leader_or_forward(
        runtime,
        refusing(LeadershipMoved(LEADER)),
        WRITE,
        forwarder=forwarder,
        caller=Caller(forwarded=True),
    )
    assert [call[0] for call in forwarder.calls] == [LEADER]
    assert answer.body == {"done": True, "forwarded": True}


def test_other_errors_pass_through(runtime):
    with pytest.raises(TimedOut):
        leader_or_forward(
            runtime,
            refusing(TimedOut("late")),
            WRITE,
            forwarder=RecordingForwarder(),
            caller=Caller(forwarded=False),
        )


def test_relay_carries_status_body_and_retry_after():
    response = relay(Answer(503, {"error": "no_leader"}, "2"))
    assert (response.status_code, response.data) == (503, {"error": "no_leader"})
    assert response["Retry-After"] == "2"
    assert not relay(Answer(200, {}, None)).has_header("Retry-After")


def test_answer_in_process_is_what_http_would_answer():
    def refuse():
        raise Unavailable("No leader now.", leader=LEADER, retry_after_s=2.5)

    assert answer_in_process(refuse) == Answer(
        503,
        {"error": "no_leader", "detail": "No leader now.", "leader": LEADER},
        "3",
    )
    ok = Answer(200, {"x": 1}, None)
    assert answer_in_process(lambda: ok) is ok


def test_one_forwarder_per_process_for_every_view(monkeypatch):
    forwarder = process_forwarder()
    assert forwarder is apps.get_app_config("nodes").forwarder
    views = (CommandsView(), ServersView(), LeaderView())
    assert all(view.forwarder is forwarder for view in views)
    # Replaceable where it is owned, for every view at once.
    fake = RecordingForwarder()
    monkeypatch.setattr(apps.get_app_config("nodes"), "forwarder", fake)
    assert all(view.forwarder is fake for view in views)


# --- LocalNode: the same path, in process ------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_local_node_sends_nothing_over_http(runtime, stub_server):
    itself = stub_server()
    runtime.node_id = itself.address
    runtime.outcome = CommandResult(index=3, term=1)
    with LocalNode(runtime, 5.0, forwarder=RecordingForwarder()) as node:
        commit = node.submit("hi")
        assert node.status()["id"] == runtime.node_status.id
        assert node.servers()["role"] == "leader"
    assert (commit.index, commit.server, commit.forwarded) == (3, itself.address, False)
    assert itself.received == []


def test_local_node_retries_while_no_leader_is_known(runtime):
    """As the CLI does: 503 no_leader means nothing was appended, so it
    waits as long as the answer says (Retry-After: 1) and tries again."""
    clock = FakeClock()
    runtime.outcome = NotLeader(None)
    node = LocalNode(
        runtime, 2.5, forwarder=RecordingForwarder(), clock=clock, sleep=clock.sleep
    )
    with pytest.raises(ClientError, match=r"no leader known \(tried for 2.5 s\)"):
        node.submit("hi")
    assert clock.slept == [1.0, 1.0, 0.5]
    assert len(runtime.submitted) == 3
    # The same (client_id, seq) every time, so the cluster applies it once.
    assert len({(s.client_id, s.seq) for s in runtime.submitted}) == 1


def test_local_node_forwards_through_the_process_forwarder(
    runtime, stub_server, app_forwarder
):
    leader = stub_server(Reply(200, {"index": 9, "term": 2, "leader": LEADER}))
    runtime.outcome = NotLeader(leader.address)
    with node_client(5.0) as node:
        assert isinstance(node, LocalNode)
        commit = node.submit("hi")
    assert (commit.index, commit.leader, commit.forwarded) == (9, LEADER, True)
    assert leader.received[0].headers["X-Raft-Forwarded"] == "1"


def test_without_a_runtime_the_node_is_asked_over_http(settings, stub_server):
    node = stub_server(Reply(200, {"id": "n", "servers": []}))
    settings.RAFT_NODE_ID = node.address
    with node_client(1.0) as client:
        assert not isinstance(client, LocalNode)
        assert client.servers()["id"] == "n"
    assert [(r.method, r.path) for r in node.received] == [("GET", "/api/servers")]


@pytest.mark.parametrize(
    "hint",
    [
        "127.0.0.1:4444",  # well formed, but no server of the configuration
        "evil.example.com:80",
        ":9991",  # not the full form a node names its leader by
        "127.0.0.1:9991/x",
        "127.0.0.1:9991\n",
    ],
)
def test_a_leader_hint_outside_the_configuration_is_not_forwarded_to(runtime, hint):
    """A forged ``source`` in a peer's message became the leader hint: a
    follower forwards only to a server of its configuration, else 503."""
    forwarder = RecordingForwarder()
    with pytest.raises(Unavailable) as raised:
        leader_or_forward(
            runtime,
            refusing(NotLeader(hint)),
            WRITE,
            forwarder=forwarder,
            caller=Caller(forwarded=False),
        )
    assert forwarder.calls == []
    assert "not a server of its configuration" in str(raised.value.detail)
    assert raised.value.retry_after_s == 1


@pytest.mark.parametrize(
    "leader, members, usable",
    [
        ("127.0.0.1:9991", {"127.0.0.1:9991"}, True),
        ("127.0.0.1:9991", {"127.0.0.1:9990"}, False),
        (None, {"127.0.0.1:9991"}, False),
        (7, {7}, False),
        ("[::1]:9991", {"[::1]:9991"}, True),
    ],
)
def test_member_leader(leader, members, usable):
    assert (member_leader(leader, members) is not None) is usable
