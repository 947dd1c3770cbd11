"""POST/DELETE /api/servers and POST /api/leader against a FakeRuntime whose
membership is scripted: error codes, forwarding, address forms."""

from dataclasses import replace

import pytest
from rest_framework import status

from consensus.core.configuration import Configuration
from consensus.errors import CommandLost, CommandTimeout, NotLeader
from consensus.membership import (
    CatchupFailed,
    ChangeConflict,
    ChangeInterrupted,
    ChangeResult,
    LeaderNotReady,
    LeadershipMoved,
    TransferTimeout,
    UnknownServer,
)
from consensus.status import PeerInfo
from nodes.client import FORWARDED_HEADER
from nodes.membership_views import MembershipView

from .stub import Reply

NEW = "127.0.0.1:9993"
CONFIGURATION = Configuration(frozenset({"127.0.0.1:9990", "127.0.0.1:9991", NEW}))


class FakeMembership:
    """Records calls; ``outcome`` is returned or, if an exception, raised."""

    def __init__(self):
        self.calls = []
        self.outcome = ChangeResult(12, 2, CONFIGURATION, True)

    def _answer(self, *call):
        self.calls.append(call)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def add_server(self, address, commit_timeout_s, requested_by=None):
        self.requested_by = requested_by
        return self._answer("add", address)

    def remove_server(self, address, commit_timeout_s, requested_by=None):
        self.requested_by = requested_by
        return self._answer("remove", address)

    def transfer_leadership(self, to):
        return self._answer("transfer", to)


@pytest.fixture
def membership(runtime, monkeypatch, forwarder):
    fake = FakeMembership()
    runtime.membership = fake
    # A fresh forwarder, so no connection outlives the test.
    monkeypatch.setattr(MembershipView, "forwarder", forwarder)
    return fake


def test_add_server_answers_with_the_committed_configuration(api, membership):
    response = api.post("/api/servers", {"address": ":9993"}, format="json")
    assert response.status_code == status.HTTP_200_OK
    assert membership.calls == [("add", NEW)]
    body = response.json()
    assert body["index"] == 12 and body["term"] == 2
    assert body["address"] == NEW
    assert body["forwarded"] is False
    assert body["leader"] == "127.0.0.1:9990"
    assert {"id": NEW, "voter": True} in body["servers"]


@pytest.mark.parametrize("body", [{}, {"address": "nonsense"}, {"address": 9993}])
def test_add_server_with_a_bad_address_is_400(api, membership, body):
    response = api.post("/api/servers", body, format="json")
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert response.json()["error"] == "bad_request"
    assert membership.calls == []


@pytest.mark.parametrize(
    "error, code, expected",
    [
        (ChangeConflict("busy"), 409, "conflict"),
        (UnknownServer("who"), 404, "not_found"),
        (CatchupFailed("slow"), 422, "catchup_failed"),
        (LeaderNotReady("new"), 503, "no_leader"),
        (ChangeInterrupted("moved"), 504, "timeout"),
        (TransferTimeout("stuck"), 504, "timeout"),
        (CommandTimeout("late"), 504, "timeout"),
        (CommandLost("gone"), 503, "no_leader"),
        (NotLeader(None), 503, "no_leader"),
    ],
)
def test_membership_errors_map_to_contract_codes(
    api, membership, error, code, expected
):
    membership.outcome = error
    response = api.post("/api/servers", {"address": ":9993"}, format="json")
    assert response.status_code == code
    assert response.json()["error"] == expected
    assert isinstance(response.json()["detail"], str)


def test_follower_forwards_an_add_to_the_leader(api, membership, stub_server):
    leader = stub_server(Reply(200, {"index": 30, "term": 3, "leader": "L"}))
    membership.outcome = NotLeader(leader.address)
    response = api.post("/api/servers", {"address": ":9993"}, format="json")
    assert response.status_code == status.HTTP_200_OK
    assert response.json()["forwarded"] is True
    assert response.json()["index"] == 30
    (received,) = leader.received
    assert (received.method, received.path) == ("POST", "/api/servers")
    assert received.body == {"address": NEW}
    assert received.headers[FORWARDED_HEADER] == "1"


def test_forwarded_request_is_not_forwarded_again(api, membership):
    membership.outcome = NotLeader("127.0.0.1:9991")
    response = api.delete(f"/api/servers/{NEW}", HTTP_X_RAFT_FORWARDED="1")
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    assert response.json()["leader"] == "127.0.0.1:9991"


def test_leader_removing_itself_passes_the_removal_to_the_new_leader(
    api, membership, stub_server
):
    """Even a forwarded DELETE goes on once leadership moved (§3.10)."""
    new_leader = stub_server(Reply(200, {"index": 40, "term": 4}))
    membership.outcome = LeadershipMoved(new_leader.address)
    response = api.delete("/api/servers/:9990", HTTP_X_RAFT_FORWARDED="1")
    assert response.status_code == status.HTTP_200_OK
    assert response.json()["forwarded"] is True
    assert membership.calls == [("remove", "127.0.0.1:9990")]
    (received,) = new_leader.received
    assert (received.method, received.path) == ("DELETE", "/api/servers/127.0.0.1:9990")


def test_forwarded_error_is_relayed(api, membership, stub_server):
    detail = "127.0.0.1:9993 did not catch up"
    leader = stub_server(Reply(422, {"error": "catchup_failed", "detail": detail}))
    membership.outcome = NotLeader(leader.address)
    response = api.post("/api/servers", {"address": ":9993"}, format="json")
    assert response.status_code == 422
    assert response.json()["error"] == "catchup_failed"


def test_unreachable_leader_is_503(api, membership, refused_address):
    membership.outcome = NotLeader(refused_address)
    response = api.post("/api/servers", {"address": ":9993"}, format="json")
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE


def test_remove_server_takes_either_address_form(api, membership):
    assert api.delete("/api/servers/:9993").status_code == 200
    assert api.delete(f"/api/servers/{NEW}").status_code == 200
    assert membership.calls == [("remove", NEW), ("remove", NEW)]
    response = api.delete("/api/servers/no-port")
    assert response.status_code == status.HTTP_400_BAD_REQUEST


@pytest.mark.parametrize(
    "body, to", [({}, None), ({"to": None}, None), ({"to": ":9991"}, "127.0.0.1:9991")]
)
def test_transfer_leadership(api, membership, body, to):
    membership.outcome = "127.0.0.1:9991"
    response = api.post("/api/leader", body, format="json")
    assert response.status_code == status.HTTP_200_OK
    assert response.json() == {"leader": "127.0.0.1:9991", "forwarded": False}
    assert membership.calls == [("transfer", to)]


def test_leader_view_of_servers_has_progress(api, runtime):
    runtime.node_status = replace(
        runtime.node_status,
        peers=(PeerInfo("127.0.0.1:9991", True, 7, 8, 0.0421),),
    )
    servers = api.get("/api/servers").json()["servers"]
    follower = next(s for s in servers if s["id"] == "127.0.0.1:9991")
    assert follower == {
        "id": "127.0.0.1:9991",
        "voter": True,
        "role": "follower",
        "match_index": 7,
        "next_index": 8,
        "last_contact_s": 0.042,
        "snapshot_bytes_sent": None,
        "snapshot_size": None,
    }


def test_leader_view_of_servers_shows_a_snapshot_transfer(api, runtime):
    runtime.node_status = replace(
        runtime.node_status,
        peers=(PeerInfo("127.0.0.1:9991", False, 0, 1, 0.5, 900, 2048, 8192),),
    )
    servers = api.get("/api/servers").json()["servers"]
    learner = next(s for s in servers if s["id"] == "127.0.0.1:9991")
    assert (learner["snapshot_bytes_sent"], learner["snapshot_size"]) == (2048, 8192)
