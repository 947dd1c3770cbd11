"""Call a node's WSGI application (raftsite.wsgi) in process, as gunicorn
would, and the same request through Django's test client, to compare."""

import io
import sys

from rest_framework.test import APIClient


def wsgi_call(
    path, body: bytes, host="127.0.0.1:9991", method="POST", query="", **headers
):
    """(status code, headers, body) of raftsite.wsgi.application for a
    request with a JSON body; ``headers`` by their HTTP names."""
    from raftsite.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9991",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **{_meta(name): value for name, value in headers.items()},
    }
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started.update(status=int(status.split()[0]), headers=dict(response_headers))

    result = application(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        result.close()
    return started["status"], started["headers"], content


def django_call(path, body: bytes, method="POST", query="", **headers):
    """(status code, headers, body) of the same request through Django's
    whole handler (the test client)."""
    client = APIClient(raise_request_exception=False)
    response = client.generic(
        method,
        f"{path}?{query}" if query else path,
        body,
        content_type="application/json",
        **{_meta(name): value for name, value in headers.items()},
    )
    return response.status_code, dict(response.items()), response.content


def _meta(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")
