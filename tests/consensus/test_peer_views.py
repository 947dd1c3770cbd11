"""Peer RPC endpoints: decode, hand to the runtime, answer its reply."""

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
)
from consensus.serializers import message_to_dict
from consensus.transport import SECRET_HEADER

A, B = "127.0.0.1:9990", "127.0.0.1:9991"


class FakeRuntime:
    node_id = B

    def __init__(self):
        self.received = []

    def handle_rpc(self, message, timeout=2.0):
        self.received.append(message)
        if isinstance(message, AppendEntries):
            return AppendEntriesReply(
                term=message.term, source=B, dest=A, success=True, match_index=0
            )
        if isinstance(message, RequestVote):
            return RequestVoteReply(
                term=message.term, source=B, dest=A, vote_granted=True
            )
        return None


@pytest.fixture
def runtime():
    config = apps.get_app_config("consensus")
    fake = FakeRuntime()
    config.runtime = fake
    yield fake
    config.runtime = None


VOTE = RequestVote(term=2, source=A, dest=B, last_log_index=1, last_log_term=0)


def test_request_vote_is_answered_with_the_runtime_reply(runtime):
    response = APIClient().post(
        "/raft/request_vote", message_to_dict(VOTE), format="json"
    )
    assert response.status_code == 200
    assert response.json()["vote_granted"] is True
    assert runtime.received == [VOTE]


def test_append_entries_round_trip(runtime):
    message = AppendEntries(term=2, source=A, dest=B, prev_log_index=0, prev_log_term=0)
    response = APIClient().post(
        "/raft/append_entries", message_to_dict(message), format="json"
    )
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert runtime.received == [message]


def test_timeout_now_carries_the_leaders_last_entry(runtime):
    message = TimeoutNow(term=2, source=A, dest=B, last_log_index=7, last_log_term=2)
    response = APIClient().post(
        "/raft/timeout_now", message_to_dict(message), format="json"
    )
    assert response.status_code == 200
    assert response.json() == {}
    assert runtime.received == [message]


def test_malformed_request_is_400_and_reaches_nothing(runtime):
    response = APIClient().post("/raft/request_vote", {"term": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert runtime.received == []


def test_without_runtime_is_503():
    response = APIClient().post(
        "/raft/request_vote", message_to_dict(VOTE), format="json"
    )
    assert response.status_code == 503


@pytest.mark.parametrize("header", [None, "wrong"])
def test_cluster_secret_required_when_configured(runtime, settings, header):
    """A peer call without the cluster secret gets 401 and changes nothing."""
    settings.RAFT_CLUSTER_SECRET = "s3cret"
    headers = {SECRET_HEADER: header} if header else {}
    response = APIClient().post(
        "/raft/request_vote", message_to_dict(VOTE), format="json", headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert runtime.received == []


def test_cluster_secret_accepted(runtime, settings):
    settings.RAFT_CLUSTER_SECRET = "s3cret"
    response = APIClient().post(
        "/raft/request_vote",
        message_to_dict(VOTE),
        format="json",
        headers={SECRET_HEADER: "s3cret"},
    )
    assert response.status_code == 200
    assert runtime.received == [VOTE]
