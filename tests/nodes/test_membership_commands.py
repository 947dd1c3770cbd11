"""addserver, removeserver and transferleader against a StubServer node."""

import pytest

from .stub import Reply
from .test_management_commands import NO_LEADER, fails, run, short

CHANGE = {
    "address": "127.0.0.1:9993",
    "index": 1004,
    "term": 2,
    "changed": True,
    "leader": "127.0.0.1:9991",
    "forwarded": True,
}


def test_addserver_prints_index_and_who_answered(stub_server):
    node = stub_server(Reply(200, CHANGE))
    output = run("addserver", ":9993", "-S", short(node.address))
    assert output == (
        "Added 127.0.0.1:9993: configuration committed at index 1004 (term 2) "
        f"by {node.address}, forwarded to leader 127.0.0.1:9991\n"
    )
    [received] = node.received
    assert (received.method, received.path) == ("POST", "/api/servers")
    assert received.body == {"address": "127.0.0.1:9993"}


def test_addserver_of_a_voter_says_nothing_to_do(stub_server):
    node = stub_server(Reply(200, {**CHANGE, "changed": False, "forwarded": False}))
    output = run("addserver", "127.0.0.1:9993", "-S", node.address)
    assert output.startswith("Nothing to do: 127.0.0.1:9993 is already a voter")
    assert "the leader (not forwarded)" in output


def test_addserver_catchup_failure_is_one_line(stub_server):
    detail = "127.0.0.1:9993 did not catch up within 30 s; removed again."
    node = stub_server(Reply(422, {"error": "catchup_failed", "detail": detail}))
    message = fails("addserver", ":9993", "-S", node.address)
    assert message == f"{node.address} answered 422 catchup_failed: {detail}"


def test_removeserver_retries_while_no_leader(stub_server):
    node = stub_server(NO_LEADER, Reply(200, {**CHANGE, "forwarded": False}))
    output = run("removeserver", ":9993", "-S", node.address)
    assert output.startswith("Removed 127.0.0.1:9993: configuration committed")
    assert [(r.method, r.path) for r in node.received] == [
        ("DELETE", "/api/servers/127.0.0.1:9993")
    ] * 2


@pytest.mark.parametrize(
    "reply, text",
    [
        (Reply(404, {"error": "not_found", "detail": "not a member"}), "404 not_found"),
        (Reply(409, {"error": "conflict", "detail": "busy"}), "409 conflict"),
        (Reply(504, {"error": "timeout", "detail": "?"}), "outcome unknown"),
    ],
)
def test_removeserver_errors_are_one_line(stub_server, reply, text):
    node = stub_server(reply)
    assert text in fails("removeserver", ":9993", "-S", node.address)
    assert len(node.received) == 1


def test_removeserver_with_a_bad_address_sends_nothing(stub_server):
    node = stub_server(Reply(200, CHANGE))
    message = fails("removeserver", "nonsense", "-S", node.address)
    assert message.startswith("invalid server address 'nonsense'")
    assert node.received == []


@pytest.mark.parametrize(
    "args, to", [([], None), (["--to", ":9992"], "127.0.0.1:9992")]
)
def test_transferleader(stub_server, args, to):
    node = stub_server(Reply(200, {"leader": "127.0.0.1:9992", "forwarded": False}))
    output = run("transferleader", *args, "-S", node.address)
    assert output == (
        f"Leadership is now with 127.0.0.1:9992; asked {node.address}, "
        "the leader then (not forwarded)\n"
    )
    [received] = node.received
    assert received.body == {"to": to}


def test_unreachable_server_is_one_line(refused_address):
    message = fails("transferleader", "-S", refused_address)
    assert message == f"cannot reach {refused_address}: connection refused"
