"""raftsite.worker.RaftThreadWorker under gunicorn, with a two-thread pool and
a trivial WSGI app: slow and silent connections take no thread, and each is
closed after RAFT_READ_TIMEOUT_S (over TLS too, when openssl is there)."""

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests

from .harness import ROOT, free_ports, wait_until

pytestmark = pytest.mark.cluster

READ_TIMEOUT_S = 1.0
APP = """\
def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body) + 2))])
    return [b"ok" + body]
"""


def start_server(tmp_path, *tls_args):
    (tmp_path / "tinyapp.py").write_text(APP)
    port = free_ports(1)[0]
    env = dict(
        os.environ,
        PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
        DJANGO_SETTINGS_MODULE="raftsite.settings",
        RAFT_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
    )
    argv = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "raftsite.worker.RaftThreadWorker",
        "--threads", "2", "--bind", f"127.0.0.1:{port}", *tls_args,
        "tinyapp:app",
    ]  # fmt: skip
    stderr = open(tmp_path / "gunicorn.stderr", "wb")
    proc = subprocess.Popen(argv, env=env, stderr=stderr, start_new_session=True)
    stderr.close()

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_until(listening, 20, "gunicorn listening")
    return proc, port


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def closed_within(sock, timeout):
    """Seconds until the server closed ``sock`` (None if not in ``timeout``)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - started


@pytest.fixture
def server(tmp_path):
    proc, port = start_server(tmp_path)
    yield port
    stop_server(proc)
    assert b"Traceback" not in (tmp_path / "gunicorn.stderr").read_bytes()


def test_slow_and_silent_connections_take_no_thread_and_are_closed(server):
    port = server
    slow = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    # Two threads, twenty slow connections: a complete request is served.
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    for _ in range(3):
        client.request("POST", "/", body=b"abc")
        answer = client.getresponse()
        assert (answer.status, answer.read()) == (200, b"okabc")
    for s in slow:
        assert closed_within(s, READ_TIMEOUT_S + 3) is not None
        s.close()


def test_a_head_completed_later_is_served(server):
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        s.sendall(b"Host: x\r\n\r\n")
        s.settimeout(3)
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")


def test_a_body_that_stops_arriving_frees_its_thread(server):
    stalled = []
    for _ in range(2):  # both threads
        s = socket.create_connection(("127.0.0.1", server))
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        stalled.append(s)
    for s in stalled:
        assert closed_within(s, READ_TIMEOUT_S + 3) is not None
        s.close()
    client = http.client.HTTPConnection("127.0.0.1", server, timeout=2)
    client.request("GET", "/")
    assert client.getresponse().status == 200


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_handshakes_and_heads_are_bounded(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    proc, port = start_server(tmp_path, "--certfile", str(cert), "--keyfile", str(key))
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        stalled[0].sendall(b"\x16")  # a handshake that stops after one byte
        stalled[1] = context.wrap_socket(stalled[1])
        stalled[1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a head
        client = http.client.HTTPSConnection(
            "127.0.0.1", port, context=context, timeout=READ_TIMEOUT_S + 3
        )
        client.request("POST", "/", body=b"abc")
        answer = client.getresponse()
        assert (answer.status, answer.read()) == (200, b"okabc")
        for s in stalled:
            assert closed_within(s, READ_TIMEOUT_S + 3) is not None
            s.close()
    finally:
        stop_server(proc)
    assert b"Traceback" not in (tmp_path / "gunicorn.stderr").read_bytes()


def test_a_request_line_over_the_limit_is_414_in_the_error_shape(shared_cluster):
    """gunicorn's own parser refuses it before Django: still JSON, as every
    API error (found by the schema test: an HTML page the schema does not
    describe)."""
    node = shared_cluster.nodes[0]
    r = requests.get(node.base_url + "/api/kv/" + "k" * 5000, timeout=10)
    assert r.status_code == 414, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"] == "too_large"
