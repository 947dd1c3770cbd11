"""raftsite/direct_routes.py: /raft/ goes from WSGI straight to its view, and
answers as the whole Django stack would, with a Content-Length always."""

import json

import pytest
from django.test import override_settings

from consensus.core.messages import AppendEntries
from consensus.serializers import message_to_dict
from consensus.transport import SECRET_HEADER
from tests.wsgi_call import django_call, wsgi_call

from .test_peer_views import A, B, runtime  # noqa: F401 - the fixture

# Django's test client connects its connection checks back after each
# request (raftsite/wsgi.py drops them), and they open the database.
pytestmark = pytest.mark.django_db

ENTRIES = AppendEntries(
    term=2, source=A, dest=B, prev_log_index=0, prev_log_term=0, entries=()
)


def answers_alike(path, body: bytes, **headers):
    """The direct route answers as the whole Django stack: status, body,
    headers; and always with a Content-Length (peers need one)."""
    status, response_headers, content = wsgi_call(path, body, **headers)
    assert (status, response_headers, content) == django_call(path, body, **headers)
    assert response_headers["Content-Length"] == str(len(content))
    return status, content


def test_append_entries_is_answered_as_through_django(runtime):  # noqa: F811
    status, content = answers_alike(
        "/raft/append_entries", json.dumps(message_to_dict(ENTRIES)).encode()
    )
    assert status == 200
    assert json.loads(content)["success"] is True
    # Both calls reached the runtime: the direct one and Django's.
    assert runtime.received == [ENTRIES, ENTRIES]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"term": 1}',
        json.dumps({**message_to_dict(ENTRIES), "dest": A}).encode(),
    ],
)
def test_malformed_messages_get_the_same_error(runtime, body):  # noqa: F811
    status, content = answers_alike("/raft/append_entries", body)
    assert status == 400
    assert json.loads(content)["error"] == "bad_request"
    assert runtime.received == []


@override_settings(RAFT_CLUSTER_SECRET="s" * 32)
def test_a_wrong_secret_gets_the_same_refusal(runtime):  # noqa: F811
    body = json.dumps(message_to_dict(ENTRIES)).encode()
    status, _ = answers_alike("/raft/append_entries", body, **{SECRET_HEADER: "no"})
    assert status == 401
    assert runtime.received == []


def test_a_host_the_node_does_not_serve_is_refused(runtime):  # noqa: F811
    body = json.dumps(message_to_dict(ENTRIES)).encode()
    status, _, _ = wsgi_call("/raft/append_entries", body, host="evil.example")
    assert status == 400
    assert runtime.received == []


def test_a_failing_runtime_is_answered_as_django_answers_it(runtime):  # noqa: F811
    def fail(message, timeout=2.0):
        raise RuntimeError("boom")

    runtime.handle_rpc = fail
    status, _ = answers_alike(
        "/raft/append_entries", json.dumps(message_to_dict(ENTRIES)).encode()
    )
    assert status == 500


def test_other_raft_paths_go_to_django(runtime):  # noqa: F811
    status, _, _ = wsgi_call("/raft/nothing_here", b"{}")
    assert status == 404


def test_the_request_signals_are_sent_as_by_djangos_handler(runtime):  # noqa: F811
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started

    seen = []

    def started(sender, environ, **kwargs):
        seen.append(("started", sender, environ["PATH_INFO"]))

    def finished(sender, **kwargs):
        seen.append(("finished", sender))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        wsgi_call("/raft/append_entries", json.dumps(message_to_dict(ENTRIES)).encode())
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert seen == [
        ("started", WSGIHandler, "/raft/append_entries"),
        ("finished", WSGIHandler),
    ]
