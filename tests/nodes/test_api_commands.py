"""POST /api/commands against a FakeRuntime; forwarding against a StubServer."""

import json

import pytest
from rest_framework import status

from consensus.errors import CommandLost, CommandTimeout, NotLeader, SessionExpired
from nodes.serializers import MAX_BATCH_REQUEST_BYTES

from .conftest import NODE_ID
from .stub import Reply

URL = "/api/commands"
LIMIT = 64 * 1024


def post_raw(api, body, content_type="application/json", **headers):
    return api.generic("POST", URL, body, content_type=content_type, **headers)


def assert_error(response, status_code, code):
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_committed_command_answers_index_term_and_leader(api, runtime, settings):
    settings.RAFT_COMMAND_TIMEOUT_S = 3.5
    response = api.post(URL, {"command": "I like beer."}, format="json")
    assert response.status_code == status.HTTP_200_OK
    assert response.json() == {
        "index": 7,
        "term": 2,
        "leader": NODE_ID,
        "forwarded": False,
    }
    [submitted] = runtime.submitted
    assert (submitted.command, submitted.client_id, submitted.seq) == (
        "I like beer.",
        None,
        None,
    )
    assert submitted.timeout == 3.5


def test_client_id_and_seq_reach_the_runtime(api, runtime):
    body = {"command": "x", "client_id": "c-1", "seq": 4}
    assert api.post(URL, body, format="json").status_code == status.HTTP_200_OK
    [submitted] = runtime.submitted
    assert (submitted.client_id, submitted.seq) == ("c-1", 4)


def test_command_text_is_kept_byte_for_byte(api, runtime):
    api.post(URL, {"command": "  spaced\tout  "}, format="json")
    assert runtime.submitted[0].command == "  spaced\tout  "


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": ""},
        {"command": None},
        {"command": 5},
        {"command": ["x"]},
        {"command": True},
        {"command": "x", "seq": 1},
        {"command": "x", "client_id": "c"},
        {"command": "x", "client_id": "c", "seq": "1"},
        {"command": "x", "client_id": "c", "seq": 1.0},
        {"command": "x", "client_id": "c", "seq": True},
        {"command": "x", "client_id": "c", "seq": -1},
        {"command": "x", "client_id": 7, "seq": 1},
        {"command": "x", "client_id": "", "seq": 1},
        ["command", "x"],
        "x",
    ],
)
def test_malformed_command_is_400_and_not_submitted(api, runtime, body):
    response = post_raw(api, json.dumps(body))
    assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")
    assert runtime.submitted == []


def test_missing_command_detail_names_the_field(api, runtime):
    body = assert_error(api.post(URL, {}, format="json"), 400, "bad_request")
    assert body["detail"].startswith("command: ")


def test_seq_without_client_id_says_they_go_together(api, runtime):
    response = api.post(URL, {"command": "x", "seq": 1}, format="json")
    body = assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")
    assert "client_id and seq go together" in body["detail"]


@pytest.mark.parametrize(
    "raw", ["{", "not json", '{"command": "x",}', '{"command": NaN}']
)
def test_bad_json_is_400(api, runtime, raw):
    assert_error(post_raw(api, raw), status.HTTP_400_BAD_REQUEST, "bad_request")
    assert runtime.submitted == []


def test_lone_surrogate_is_400_not_a_crash(api, runtime):
    response = post_raw(api, '{"command": "\\ud800"}')
    assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")


def test_form_encoded_body_is_400(api, runtime):
    response = post_raw(
        api, "command=x", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")


def test_command_of_exactly_64_kib_is_accepted(api, runtime):
    response = api.post(URL, {"command": "a" * LIMIT}, format="json")
    assert response.status_code == status.HTTP_200_OK


@pytest.mark.parametrize(
    "command",
    ["a" * (LIMIT + 1), "é" * (LIMIT // 2 + 1)],  # é is two bytes of UTF-8
    ids=["ascii", "two-byte"],
)
def test_command_over_64_kib_of_utf8_is_413(api, runtime, command):
    response = api.post(URL, {"command": command}, format="json")
    assert_error(response, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large")
    assert runtime.submitted == []


def test_huge_body_is_413_before_parsing(api, runtime):
    # Over the body bound of a batch, the larger of the two forms.
    body = json.dumps({"command": "x", "padding": "p" * MAX_BATCH_REQUEST_BYTES})
    assert_error(
        post_raw(api, body), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large"
    )
    assert runtime.submitted == []


def test_no_known_leader_is_503_with_retry_after(api, runtime):
    runtime.outcome = NotLeader(None)
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_503_SERVICE_UNAVAILABLE, "no_leader")
    assert body["leader"] is None
    assert int(response["Retry-After"]) >= 1


def test_process_without_a_node_is_503(api):
    response = api.post(URL, {"command": "x"}, format="json")
    assert_error(response, status.HTTP_503_SERVICE_UNAVAILABLE, "no_leader")
    assert "Retry-After" in response


def test_command_timeout_is_504(api, runtime):
    runtime.outcome = CommandTimeout()
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_504_GATEWAY_TIMEOUT, "timeout")
    assert "may or may not commit" in body["detail"]


def test_lost_command_is_503_and_says_it_did_not_commit(api, runtime):
    runtime.outcome = CommandLost()
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_503_SERVICE_UNAVAILABLE, "no_leader")
    assert "did not commit" in body["detail"]


def test_a_pair_whose_session_ended_is_409_conflict(api, runtime):
    """README, Client sessions: a repeat of a pair whose answer is no longer
    kept is refused, never applied; the detail says why."""
    runtime.outcome = SessionExpired("The session of client 'c' has ended (...)")
    body = {"command": "x", "client_id": "c", "seq": 1}
    response = api.post(URL, body, format="json")
    answer = assert_error(response, status.HTTP_409_CONFLICT, "conflict")
    assert answer["detail"] == "The session of client 'c' has ended (...)"
    assert "Retry-After" not in response


def test_a_leaders_409_is_relayed(api, runtime, forwarder, stub_server):
    refused = {"error": "conflict", "detail": "seq 1 of client 'c' is too old"}
    leader = stub_server(Reply(409, refused))
    runtime.outcome = NotLeader(leader.address)
    body = {"command": "x", "client_id": "c", "seq": 1}
    response = api.post(URL, body, format="json")
    assert response.status_code == status.HTTP_409_CONFLICT
    assert response.json() == {**refused, "forwarded": True}


# -- forwarding ---------------------------------------------------------------


def test_follower_forwards_to_the_leader(api, runtime, forwarder, stub_server):
    leader = stub_server(
        Reply(200, {"index": 12, "term": 3, "leader": "LEADER", "forwarded": False})
    )
    runtime.outcome = NotLeader(leader.address)
    body = {"command": "I like beer.", "client_id": "c-9", "seq": 2}
    response = api.post(URL, body, format="json")
    assert response.status_code == status.HTTP_200_OK, response.content
    assert response.json() == {
        "index": 12,
        "term": 3,
        "leader": "LEADER",
        "forwarded": True,
    }
    [received] = leader.received
    assert (received.method, received.path) == ("POST", "/api/commands")
    assert received.headers["X-Raft-Forwarded"] == "1"
    assert received.body == body


def test_forwarded_command_without_pair_sends_only_the_command(
    api, runtime, forwarder, stub_server
):
    leader = stub_server(
        Reply(200, {"index": 1, "term": 1, "leader": "L", "forwarded": False})
    )
    runtime.outcome = NotLeader(leader.address)
    api.post(URL, {"command": "x"}, format="json")
    assert leader.received[0].body == {"command": "x"}


def test_forwarded_command_is_not_forwarded_again(api, runtime, forwarder, stub_server):
    leader = stub_server()
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json", HTTP_X_RAFT_FORWARDED="1")
    body = assert_error(response, status.HTTP_503_SERVICE_UNAVAILABLE, "no_leader")
    assert body["leader"] == leader.address
    assert "Retry-After" in response
    assert leader.received == []


def test_leader_error_is_relayed_with_its_status(api, runtime, forwarder, stub_server):
    leader = stub_server(
        Reply(
            503, {"error": "no_leader", "detail": "stepping down"}, {"Retry-After": "2"}
        )
    )
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    assert response.json() == {
        "error": "no_leader",
        "detail": "stepping down",
        "forwarded": True,
    }
    assert response["Retry-After"] == "2"


@pytest.mark.parametrize(
    "sent, relayed",
    [("86400", "30"), ("1e9", "1"), ("nan", "1"), ("-5", "1"),
     ("Wed, 21 Oct 2026 07:28:00 GMT", "1"), ("2 x", "1")],
)  # fmt: skip
def test_a_leaders_retry_after_is_bounded_before_it_is_relayed(
    api, runtime, forwarder, stub_server, sent, relayed
):
    leader = stub_server(
        Reply(503, {"error": "no_leader", "detail": "busy"}, {"Retry-After": sent})
    )
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    assert response["Retry-After"] == relayed


def test_unreachable_leader_is_503(api, runtime, forwarder, refused_address):
    runtime.outcome = NotLeader(refused_address)
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_503_SERVICE_UNAVAILABLE, "no_leader")
    assert "connection refused" in body["detail"]
    assert "Retry-After" in response


def test_connection_lost_after_sending_is_504(api, runtime, forwarder, stub_server):
    leader = stub_server(Reply(action="drop"))
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    assert_error(response, status.HTTP_504_GATEWAY_TIMEOUT, "timeout")
    assert len(leader.received) == 1


def test_leader_not_answering_in_time_is_504(
    api, runtime, forwarder, stub_server, settings
):
    settings.RAFT_COMMAND_TIMEOUT_S = 0.2
    leader = stub_server(Reply(action="hang"))
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    assert_error(response, status.HTTP_504_GATEWAY_TIMEOUT, "timeout")


def test_leader_answer_that_is_not_json_is_504(api, runtime, forwarder, stub_server):
    leader = stub_server(Reply(500, b"<html>Server Error</html>"))
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_504_GATEWAY_TIMEOUT, "timeout")
    assert "HTTP 500" in body["detail"]


@pytest.mark.parametrize("seq", [2**62 + 1, 2**63, 2**63 - 1, 2**64])
def test_an_absurd_seq_is_400_and_not_submitted(api, runtime, seq):
    """Issue 10: a seq followers would refuse (above 2^62) or SQLite cannot
    store is refused before anything is appended."""
    response = post_raw(api, json.dumps({"command": "x", "client_id": "c", "seq": seq}))
    assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")
    assert runtime.submitted == []


@pytest.mark.parametrize("field", ["command", "client_id"])
def test_a_lone_surrogate_anywhere_is_400(api, runtime, field):
    body = {"command": "x", "client_id": "c", "seq": 1, field: "SURROGATE"}
    response = post_raw(api, json.dumps(body).replace("SURROGATE", "\\udfff"))
    assert_error(response, status.HTTP_400_BAD_REQUEST, "bad_request")
    assert runtime.submitted == []


def test_a_body_over_djangos_upload_cap_is_413_not_500(api, runtime):
    body = json.dumps({"command": "x", "padding": "p" * (3 * 1024 * 1024)})
    assert_error(
        post_raw(api, body), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large"
    )
    assert runtime.submitted == []


def test_a_leader_answer_over_the_cap_is_504(api, runtime, forwarder, stub_server):
    """A forwarded answer is read no further than MAX_ANSWER_BYTES."""
    from nodes.forwarding import MAX_ANSWER_BYTES

    padding = b" " * (MAX_ANSWER_BYTES + 1)
    leader = stub_server(Reply(200, b'{"index": 1, "term": 1}' + padding))
    runtime.outcome = NotLeader(leader.address)
    response = api.post(URL, {"command": "x"}, format="json")
    body = assert_error(response, status.HTTP_504_GATEWAY_TIMEOUT, "timeout")
    assert "over" in body["detail"]
