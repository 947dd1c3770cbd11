"""clientcommand, print, count and status against a StubServer node."""

import uuid
from http.client import RemoteDisconnected
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from nodes.client import ClientError, RaftClient

from .stub import Reply

COMMITTED = {"index": 7, "term": 2, "leader": "127.0.0.1:9991", "forwarded": True}
NO_LEADER = Reply(503, {"error": "no_leader", "detail": "none"}, {"Retry-After": "0"})
TIMEOUT = Reply(504, {"error": "timeout", "detail": "unknown"})
STATUS = {
    "id": "127.0.0.1:9990",
    "role": "follower",
    "term": 3,
    "leader": "127.0.0.1:9991",
    "commit_index": 12,
    "last_applied": 11,
    "last_log_index": 13,
    "servers": [
        {"id": "127.0.0.1:9990", "voter": True},
        {"id": "127.0.0.1:9991", "voter": True},
        {"id": "127.0.0.1:9993", "voter": False},
    ],
}


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def fails(*args) -> str:
    """The CommandError message of a failing command, checked to be one line."""
    with pytest.raises(CommandError) as raised:
        run(*args)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def short(address):
    """The ':port' shorthand for a loopback address."""
    return ":" + address.rsplit(":", 1)[1]


def test_clientcommand_prints_the_committing_server_and_index(stub_server):
    node = stub_server(Reply(200, COMMITTED))
    output = run("clientcommand", "-m", "I like beer.", "-S", short(node.address))
    assert output == (
        f"Committed at index 7 (term 2) by {node.address}, "
        "forwarded to leader 127.0.0.1:9991\n"
    )
    [received] = node.received
    assert (received.method, received.path) == ("POST", "/api/commands")
    assert received.body["command"] == "I like beer."
    assert received.body["seq"] == 1
    uuid.UUID(received.body["client_id"])


def test_one_client_is_one_session_with_a_seq_per_command(stub_server):
    """A client object keeps its client_id and numbers its commands, so
    its retries (same pair) apply once and its commands are distinct."""
    node = stub_server(NO_LEADER, Reply(200, COMMITTED))
    with RaftClient(node.address, 10, sleep=lambda s: None) as client:
        client.submit("a")
        client.submit("b")
    pairs = [(r.body["client_id"], r.body["seq"]) for r in node.received]
    assert pairs == [
        (client.client_id, 1),
        (client.client_id, 1),
        (client.client_id, 2),
    ]
    with RaftClient(node.address, 10) as other:
        other.submit("c")
    assert node.received[-1].body["client_id"] != client.client_id


def test_a_pair_whose_session_ended_is_one_line_and_not_retried(stub_server):
    detail = "The session of client 'x' has ended; this command was not applied."
    node = stub_server(Reply(409, {"error": "conflict", "detail": detail}))
    message = fails("clientcommand", "-m", "x", "-S", node.address)
    assert message == f"{node.address} answered 409 conflict: {detail}"
    assert len(node.received) == 1


def test_direct_commit_says_not_forwarded(stub_server):
    node = stub_server(Reply(200, {**COMMITTED, "leader": "x", "forwarded": False}))
    output = run("clientcommand", "-m", "hi", "-S", node.address)
    expected = f"Committed at index 7 (term 2) by {node.address}, the leader"
    assert output == f"{expected} (not forwarded)\n"


@pytest.mark.parametrize("name", ["print", "count"])
def test_print_and_count_send_their_command(stub_server, name):
    node = stub_server(Reply(200, COMMITTED))
    output = run(name, "-S", node.address)
    assert "index 7" in output
    assert node.received[0].body["command"] == name


def test_no_leader_then_success_retries_with_the_same_pair(stub_server):
    node = stub_server(NO_LEADER, TIMEOUT, Reply(200, COMMITTED))
    output = run("clientcommand", "-m", "x", "-S", node.address)
    assert "index 7" in output
    bodies = [r.body for r in node.received]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]


def test_lost_connection_is_retried(stub_server):
    node = stub_server(Reply(action="drop"), Reply(200, COMMITTED))
    assert "index 7" in run("clientcommand", "-m", "x", "-S", node.address)
    assert node.received[0].body == node.received[1].body


def test_retry_after_is_honoured(stub_server):
    node = stub_server(
        Reply(503, {"error": "no_leader", "detail": ""}, {"Retry-After": "2"}),
        Reply(200, COMMITTED),
    )
    pauses = []
    with RaftClient(node.address, 10, sleep=pauses.append) as client:
        assert client.submit("x").index == 7
    assert pauses == [2.0]


def test_no_leader_until_the_timeout(stub_server):
    node = stub_server(NO_LEADER)
    message = fails("clientcommand", "-m", "x", "-S", node.address, "--timeout", "0.3")
    assert message == "no leader known (tried for 0.3 s)"
    assert len(node.received) >= 2


def test_timeouts_until_the_deadline_leave_the_outcome_unknown(stub_server):
    node = stub_server(TIMEOUT)
    message = fails("count", "-S", node.address, "--timeout", "0.3")
    assert (
        message
        == "outcome unknown: timed out after 0.3 s (the command may or may not commit)"
    )
    assert len(node.received) >= 2


def test_server_that_never_answers_leaves_the_outcome_unknown(stub_server):
    node = stub_server(Reply(action="hang"))
    message = fails("clientcommand", "-m", "x", "-S", node.address, "--timeout", "0.3")
    assert (
        message
        == "outcome unknown: timed out after 0.3 s (the command may or may not commit)"
    )


def test_connection_refused_is_one_line(refused_address):
    message = fails("clientcommand", "-m", "x", "-S", refused_address)
    assert message == f"cannot reach {refused_address}: connection refused"


class ScriptedSession:
    """A requests.Session stand-in that raises the given errors in turn."""

    def __init__(self, *errors):
        self.errors = list(errors)

    def request(self, *args, **kwargs):
        raise self.errors.pop(0)

    def close(self):
        pass


def lost_connection():
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
    )


def refused_connection():
    error = NewConnectionError(None, "Failed to establish a new connection")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/api/commands", error))


def test_refused_after_a_lost_connection_is_outcome_unknown():
    """The first attempt may have reached the log before the node went away."""
    session = ScriptedSession(lost_connection(), refused_connection())
    client = RaftClient(":9990", 10, session=session, sleep=lambda s: None)
    with pytest.raises(ClientError) as raised:
        client.submit("x")
    assert str(raised.value) == (
        "outcome unknown: lost 127.0.0.1:9990 and cannot reach it again "
        "(connection refused); the command may or may not commit"
    )


def test_rejected_command_reports_the_servers_error(stub_server):
    node = stub_server(
        Reply(413, {"error": "too_large", "detail": "The command is too big."})
    )
    message = fails("clientcommand", "-m", "x", "-S", node.address)
    assert message == f"{node.address} answered 413 too_large: The command is too big."
    assert len(node.received) == 1


def test_answer_that_is_not_json_is_one_line(stub_server):
    node = stub_server(Reply(502, b"<html>Bad Gateway</html>"))
    message = fails("clientcommand", "-m", "x", "-S", node.address)
    assert message == (
        f"outcome unknown: unexpected answer from {node.address}: HTTP 502, "
        "not the API's JSON; the command may or may not commit"
    )


@pytest.mark.parametrize("server", ["9990", "host:port", ""])
def test_bad_server_address_is_one_line(server):
    message = fails("clientcommand", "-m", "x", "-S", server)
    assert message.startswith(f"invalid server address {server!r}")


def test_bad_timeout_is_one_line():
    assert "positive number of seconds" in fails(
        "print", "-S", ":9990", "--timeout", "0"
    )


# -- status -------------------------------------------------------------------


def test_status_prints_a_summary(stub_server):
    node = stub_server(Reply(200, STATUS))
    output = run("status", "-S", node.address)
    assert output.splitlines() == [
        "id:             127.0.0.1:9990",
        "role:           follower",
        "term:           3",
        "leader:         127.0.0.1:9991",
        "commit index:   12",
        "last applied:   11",
        "last log index: 13",
        "servers:        127.0.0.1:9990 (voter)",
        "                127.0.0.1:9991 (voter)",
        "                127.0.0.1:9993 (learner)",
    ]
    assert node.received[0].path == "/api/status"


@pytest.mark.parametrize(
    "fields, line",
    [
        ({"snapshot_index": 0, "first_log_index": 1}, "snapshot index: none"),
        ({"snapshot_index": 8, "first_log_index": 1}, "snapshot index: 8"),
        (
            {"snapshot_index": 10, "first_log_index": 6},
            "snapshot index: 10 (log starts at 6)",
        ),
    ],
)
def test_status_shows_the_snapshot_index(stub_server, fields, line):
    node = stub_server(Reply(200, {**STATUS, **fields}))
    lines = run("status", "-S", node.address).splitlines()
    assert lines[7] == line  # after the last log index, before the servers


def test_status_without_leader(stub_server):
    node = stub_server(Reply(200, {**STATUS, "leader": None}))
    assert "leader:         none known" in run("status", "-S", node.address)


def test_status_refused(refused_address):
    assert fails("status", "-S", refused_address) == (
        f"cannot reach {refused_address}: connection refused"
    )


def test_status_not_json(stub_server):
    node = stub_server(Reply(200, b"hello"))
    assert fails("status", "-S", node.address) == (
        f"unexpected answer from {node.address}: HTTP 200, not a status"
    )


def test_status_error_answer(stub_server):
    node = stub_server(Reply(503, {"error": "no_leader", "detail": "not serving"}))
    assert fails("status", "-S", node.address) == (
        f"{node.address} answered 503 no_leader: not serving"
    )


def test_status_timeout(stub_server):
    node = stub_server(Reply(action="hang"))
    assert fails("status", "-S", node.address, "--timeout", "0.2") == (
        f"no answer from {node.address} within 0.2 s"
    )


@pytest.mark.parametrize(
    "value, seconds",
    [("2", 2.0), (" 3 ", 3.0), ("0", 0.0), ("86400", 30.0), ("3599", 30.0),
     ("1e9", 1.0), ("nan", 1.0), ("inf", 1.0), ("-1", 1.0), ("1.5", 1.0),
     ("", 1.0), (None, 1.0), ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0)],
)  # fmt: skip
def test_retry_after_is_bounded(value, seconds):
    """A Retry-After from a server, or whoever answers in its place, cannot
    park a client: whole seconds up to 30, else the default second."""
    from nodes.client import parse_retry_after

    assert parse_retry_after(value) == seconds
