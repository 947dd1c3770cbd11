"""The lean path of POST /api/commands (raftsite/hot_paths.py,
raftsite/negotiation.py): the same answers and headers as the full stack,
Accept headers DRF refuses still refused, and the admin's middleware still
on every other path."""

import pytest
from django.db import transaction
from rest_framework import status

from tests.wsgi_call import django_call, wsgi_call

URL = "/api/commands"
BODY = b'{"command": "x"}'


def post(api, **headers):
    return api.generic("POST", URL, BODY, content_type="application/json", **headers)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_the_usual_accept_headers_get_json(api, runtime, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = post(api, **headers)
    assert response.status_code == status.HTTP_200_OK
    assert response["Content-Type"] == "application/json"
    assert response.json()["index"] == 7
    # The security headers still come; no cookie, no Vary on it.
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


@pytest.mark.parametrize(
    "accept", ["", "text/html", "application/json; indent=4", "application/*"]
)
def test_other_accept_headers_get_drfs_answer(api, runtime, accept):
    """Everything but the three shortcuts goes through DRF's negotiation."""
    response = post(api, HTTP_ACCEPT=accept)
    if accept in ("", "text/html"):
        assert response.status_code == status.HTTP_406_NOT_ACCEPTABLE
        assert runtime.submitted == []
    else:
        assert response.status_code == status.HTTP_200_OK
        assert response["Content-Type"].startswith("application/json")


def test_a_format_parameter_is_drfs_to_judge(api, runtime):
    response = api.generic(
        "POST", URL + "?format=xml", BODY, content_type="application/json"
    )
    assert response.status_code == status.HTTP_404_NOT_FOUND


def test_a_host_the_node_does_not_serve_is_still_refused(api, runtime):
    response = post(api, HTTP_HOST="evil.example")
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert runtime.submitted == []


def test_other_paths_keep_the_session_and_user(client, runtime):
    """The admin's login page runs the whole stack: a CSRF cookie."""
    response = client.get("/admin/login/")
    assert response.status_code == status.HTTP_200_OK
    assert any(name.startswith("raft_csrf_") for name in response.cookies)
    assert response.wsgi_request.user.is_anonymous


@pytest.mark.django_db(transaction=True)
def test_key_value_requests_take_the_lean_path_with_the_same_answers(api, runtime):
    """No session cookie, the same JSON and security headers, as for commands;
    a key that is absent is still the contract's 404."""
    response = api.get("/api/kv/absent?consistency=stale")
    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response.json()["error"] == "not_found"
    assert not any(name.startswith("raft_session") for name in response.cookies)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.wsgi_request.path_info == "/api/kv/absent"
    assert not hasattr(response.wsgi_request, "session")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, code",
    [
        (BODY, 200),
        (b'{"command": "x", "client_id": "c", "seq": 3}', 200),
        (b'{"command": ""}', 400),
        (b'{"command": "x", "seq": 3}', 400),
        (b"{", 400),
        (b'{"command": "' + b"x" * 70000 + b'"}', 413),
    ],
)
def test_the_direct_route_answers_as_the_whole_stack(runtime, body, code):
    """raftsite/direct_routes.py: POST /api/commands from WSGI straight to its
    view, through the middleware hot paths keep: the same status, headers
    (security headers included) and body as Django's whole handler."""
    direct = wsgi_call(URL, body, host="testserver")
    assert direct[0] == code
    assert direct == django_call(URL, body)
    assert direct[1]["X-Frame-Options"] == "DENY"
    assert direct[1]["Content-Length"] == str(len(direct[2]))
    assert len(runtime.submitted) == (2 if code == 200 else 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "method, path, query, body",
    [
        ("PUT", "/api/kv/a/b", "", b'{"value": "v"}'),
        ("PUT", "/api/kv/a", "", b'{"value": 5}'),
        ("GET", "/api/kv/absent", "consistency=stale", b""),
        ("GET", "/api/kv/x", "consistency=nonsense", b""),
        ("DELETE", "/api/kv/k", "", b""),
        ("GET", "/api/kv", "prefix=a&limit=0", b""),
        ("GET", "/api/kv/", "", b""),  # no key: Django's own 404
        ("GET", "/api/kv/x", "consistency=stale&consistency=leader", b""),
    ],
)
def test_key_value_requests_take_the_direct_route_with_the_same_answers(
    runtime, method, path, query, body
):
    """/api/kv/<key> is resolved per request on the direct route: the same
    answers as through Django's whole handler (each write rolled back, so
    that both find the same map)."""
    direct = undone(
        wsgi_call, path, body, host="testserver", method=method, query=query
    )
    assert direct == undone(django_call, path, body, method=method, query=query)
    assert direct[1]["X-Content-Type-Options"] == "nosniff"


def undone(call, *args, **kwargs):
    with transaction.atomic():
        result = call(*args, **kwargs)
        transaction.set_rollback(True)
    return result
