"""The lean path of POST /api/commands (raftsite/hot_paths.py,
raftsite/negotiation.py): the same answers and headers as the full stack,
Accept headers DRF refuses still refused, and the admin's middleware still
on every other path."""

import pytest
from rest_framework import status

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
