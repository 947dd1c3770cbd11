"""manage.py kv against StubServer nodes: one line per result, one line
per error."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from .stub import Reply


def run(*args):
    out = StringIO()
    call_command("kv", *args, stdout=out)
    return out.getvalue()


def fails(*args) -> str:
    with pytest.raises(CommandError) as raised:
        run(*args)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_put_prints_the_revision(stub_server):
    node = stub_server(Reply(200, {"key": "a b", "value": "v", "revision": 12}))
    assert run("put", "a b", "v", "--prev-revision", "3", "-S", node.address) == (
        "put a b revision 12\n"
    )
    [received] = node.received
    assert received.path == "/api/kv/a%20b"
    assert received.body["prev_revision"] == 3


def test_get_prints_value_revision_and_applied_index(stub_server):
    node = stub_server(
        Reply(200, {"key": "k", "value": "two\nlines", "revision": 12,
                    "applied_index": 14})  # fmt: skip
    )
    output = run("get", "k", "--consistency", "stale", "-S", node.address)
    assert output == 'k = "two\\nlines" (revision 12, applied 14)\n'
    assert node.received[0].path == "/api/kv/k?consistency=stale"


def test_del_and_list(stub_server):
    node = stub_server(
        Reply(200, {"key": "k", "revision": 15}),
        Reply(200, {"items": [{"key": "p/a", "value": "1", "revision": 4}],
                    "more": False, "applied_index": 15}),  # fmt: skip
    )
    assert run("del", "k", "-S", node.address) == "deleted k revision 15\n"
    assert run("list", "--prefix", "p/", "-S", node.address) == "p/a = 1 (revision 4)\n"


def test_watch_stops_after_count(stub_server):
    events = [
        {"type": "put", "key": "w/a", "value": "1", "revision": 5},
        {"type": "delete", "key": "w/a", "value": None, "revision": 6},
        {"type": "put", "key": "w/b", "value": "2", "revision": 7},
    ]
    node = stub_server(Reply(200, {"events": events, "revision": 7}))
    output = run("watch", "--prefix", "w/", "--after", "4", "--count", "2",
                 "-S", node.address)  # fmt: skip
    assert output == "put w/a = 1 (revision 5)\ndelete w/a (revision 6)\n"
    assert "after=4" in node.received[0].path


@pytest.mark.parametrize(
    "argv, current, line",
    [
        (["--prev-revision", "3"], 7, "precondition failed: the key's revision is 7 (not 3)"),
        (["--prev-revision", "3"], 0, "precondition failed: k does not exist (not revision 3)"),
        (["--prev-revision", "0"], 7, "precondition failed: k exists at revision 7"),
    ],
)  # fmt: skip
def test_a_failed_compare_and_set_is_one_line(stub_server, argv, current, line):
    node = stub_server(
        Reply(412, {"error": "precondition_failed", "detail": "x",
                    "current_revision": current})  # fmt: skip
    )
    assert fails("put", "k", "v", *argv, "-S", node.address) == line


@pytest.mark.parametrize(
    "reply, line",
    [
        (Reply(404, {"error": "not_found", "detail": "No key."}), "not found: no key k"),
        (Reply(401, {"error": "unauthorized", "detail": "No token."}),
         "unauthorized: No token. Give --token or set RAFT_TOKEN."),
        (Reply(403, {"error": "forbidden", "detail": "Needs read."}),
         "forbidden: Needs read."),
    ],
)  # fmt: skip
def test_error_answers_are_one_line_naming_the_code(stub_server, reply, line):
    node = stub_server(reply)
    assert fails("get", "k", "-S", node.address) == line


def test_an_unreachable_server_is_one_line(refused_address):
    line = fails("del", "k", "-S", refused_address)
    assert line == f"unreachable: {refused_address} (connection refused)"


def test_a_bad_server_address_is_one_line():
    assert "invalid server address" in fails("get", "k", "-S", "http://x:1")


def test_a_compacted_watch_is_one_line(stub_server):
    node = stub_server(Reply(410, {"error": "compacted", "detail": "Too old."}))
    assert fails("watch", "--after", "1", "-S", node.address) == "compacted: Too old."
