"""The error shape for routes, methods and crashes; JSON under /api/ and /raft/."""

import pytest
from django.test import RequestFactory
from rest_framework import status

from nodes import errors


@pytest.mark.parametrize("path", ["/api/nope", "/api/status/", "/raft/nope", "/api"])
def test_unknown_api_route_is_404_json(api, path):
    response = api.get(path)
    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"
    assert path in response.json()["detail"]


def test_unknown_route_elsewhere_keeps_django_page(client):
    response = client.get("/nope")
    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "method, path",
    [("get", "/api/commands"), ("delete", "/api/status"), ("put", "/api/log")],
)
def test_wrong_method_is_405_in_the_error_shape(api, runtime, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED
    body = response.json()
    assert body["error"] == "method_not_allowed"
    assert isinstance(body["detail"], str)


def test_crash_in_a_view_is_500_json_without_traceback(api, runtime, caplog):
    runtime.node_status = RuntimeError("secret internals")
    response = api.get("/api/status")
    assert response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR
    body = response.json()
    assert body["error"] == "internal_error"
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    # The operator still gets the traceback, in the server's log.
    assert any(record.exc_info for record in caplog.records)


def test_handler500_answers_json_under_api():
    response = errors.server_error(RequestFactory().get("/api/status"))
    assert response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR
    assert response["Content-Type"] == "application/json"


def test_validation_detail_is_one_line_of_text():
    from rest_framework.exceptions import ValidationError

    exc = ValidationError({"command": ["This field is required."], "seq": ["Bad."]})
    response = errors.exception_handler(exc, {})
    assert response.data == {
        "error": "bad_request",
        "detail": "command: This field is required.; seq: Bad.",
    }
