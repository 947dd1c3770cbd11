"""Certificates and a small HTTPS server for the TLS tests (openssl makes
the certificates: scripts/tls_certs.py)."""

import contextlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from consensus.tls import TLSFiles
from scripts.tls_certs import make_ca, make_cert


def skip_without_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is missing (Debian's openssl package)")


def make_pki(base: Path) -> dict:
    """A CA with a node certificate for 127.0.0.1 ("node"), one for
    127.0.0.2 ("elsewhere"), and another CA ("other_ca")."""
    skip_without_openssl()
    ca = make_ca(base / "cluster", common_name="test CA")
    return {
        "ca": ca[0],
        "node": make_cert(base / "cluster", ca, "node", ips=("127.0.0.1",), dns=()),
        "elsewhere": make_cert(
            base / "cluster", ca, "elsewhere", ips=("127.0.0.2",), dns=()
        ),
        "other_ca": make_ca(base / "other", common_name="another CA")[0],
    }


@contextlib.contextmanager
def https_server(files: TLSFiles, body: dict | None = None):
    """An HTTPS server on a free loopback port, as a node serves (a client
    certificate asked for, not required), answering every GET with 200 and
    ``body`` as JSON (204 without one); yields its address."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(200 if body is not None else 204)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = files.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
