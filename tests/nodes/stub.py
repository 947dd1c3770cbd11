"""StubServer: a scripted HTTP server on a free loopback port, in a thread.

It stands in for a node: tests script its answers and read what it got.
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: object  # the decoded JSON, or the raw bytes if not JSON


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict -> JSON; bytes -> sent as is
    headers: dict = field(default_factory=dict)
    action: str = "answer"  # or "drop" (close, no answer) or "hang"


class StubServer:
    """Answers each request with the next scripted Reply; the last one
    repeats once the script runs out."""

    def __init__(self, *replies: Reply):
        self.script = list(replies) or [Reply(200, {})]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        # Set at close: frees handlers that "hang", so threads end.
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval only makes shutdown() at close() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self._answer()

            def do_DELETE(self):
                self._answer()

            def do_PUT(self):
                self._answer()

            def _answer(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                reply = stub._next(
                    Received(self.command, self.path, dict(self.headers), body)
                )
                if reply.action == "hang":
                    stub._release.wait(30)
                if reply.action in ("hang", "drop"):
                    self.close_connection = True
                    return
                payload = reply.body
                if not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass  # keep test output clean

        return Handler
