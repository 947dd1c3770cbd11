"""ClientRequestLimit: client requests beyond the bound get 503 overloaded at
once, peer RPC is never counted, and a slot is held until the response has
been written (the server closes the iterable)."""

import json
import threading

from raftsite.client_limit import ClientRequestLimit


class FileWrapper:
    def __init__(self, filelike):
        self.filelike = filelike
        self.closed = False

    def __iter__(self):
        return iter([b"file"])

    def close(self):
        self.closed = True


class App:
    """A WSGI app that answers 200."""

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def call(app, path, method="GET"):
    answer = {}

    def start_response(status, headers):
        answer["status"] = status
        answer["headers"] = dict(headers)

    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "wsgi.file_wrapper": FileWrapper,
    }
    result = app(environ, start_response)
    answer["body"] = b"".join(result)
    return answer, result


def test_client_requests_beyond_the_bound_get_503_overloaded_with_retry_after():
    app = ClientRequestLimit(App(), limit=2)
    held = [call(app, "/api/commands")[1], call(app, "/dashboard/")[1]]
    answer, result = call(app, "/api/status")
    assert answer["status"].startswith("503")
    assert answer["headers"]["Retry-After"] == "1"
    assert answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"])["error"] == "overloaded"
    # A slot comes back when the server closes a response, not before.
    held[0].close()
    assert call(app, "/api/status")[0]["status"] == "200 OK"


def test_peer_rpc_is_never_refused_or_counted():
    app = ClientRequestLimit(App(), limit=1)
    held = call(app, "/api/commands")[1]
    for _ in range(5):
        answer, result = call(app, "/raft/append_entries")
        assert answer["status"] == "200 OK"
    assert call(app, "/admin/")[0]["status"].startswith("503")
    held.close()
    assert call(app, "/admin/")[0]["status"] == "200 OK"


def test_closing_twice_releases_one_slot():
    app = ClientRequestLimit(App(), limit=1)
    result = call(app, "/api/status")[1]
    result.close()
    result.close()
    call(app, "/api/status")
    assert call(app, "/api/status")[0]["status"].startswith("503")


def test_a_view_that_raises_gives_its_slot_back():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    app = ClientRequestLimit(broken, limit=1)
    for _ in range(3):
        try:
            app({"PATH_INFO": "/api/status"}, None)
        except RuntimeError:
            pass
    ok = ClientRequestLimit(App(), limit=1)
    ok._slots = app._slots
    assert call(ok, "/api/status")[0]["status"] == "200 OK"


def test_a_file_response_keeps_the_server_file_wrapper():
    def send_file(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](object())

    app = ClientRequestLimit(send_file, limit=1)
    answer, result = call(app, "/admin/snapshot")
    assert isinstance(result, FileWrapper)
    assert call(app, "/api/status")[0]["status"].startswith("503")
    result.close()
    assert result.closed
    assert call(app, "/api/status")[0]["status"] == "200 OK"


def test_concurrent_requests_never_exceed_the_bound():
    limit, inside, most = 4, [0], [0]
    lock, gate = threading.Lock(), threading.Event()

    def slow(environ, start_response):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        gate.wait(5)
        with lock:
            inside[0] -= 1
        start_response("200 OK", [])
        return [b""]

    app = ClientRequestLimit(slow, limit=limit)
    statuses = []

    def client():
        answer, result = call(app, "/api/commands")
        if hasattr(result, "close"):  # as a WSGI server does
            result.close()
        statuses.append(answer["status"])

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert most[0] <= limit
    assert statuses.count("200 OK") >= limit
    assert len(statuses) == 12
