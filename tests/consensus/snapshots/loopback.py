"""Loopback HTTP for the transfer tests: this process's Django served by
a threaded wsgiref server, a stand-in follower runtime for its view, and a
TCP proxy in front of it that can drop a connection in the middle of a
request or before its reply."""

from __future__ import annotations

import socket
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from django.core.handlers.wsgi import WSGIHandler

from consensus.snapshots.receiver import SnapshotReceiver
from consensus.status import NodeStatus

LEADER, FOLLOWER = "127.0.0.1:9990", "127.0.0.1:9991"


class RecordingReceiver(SnapshotReceiver):
    """The follower's receiver, remembering the offset of each chunk."""

    def __init__(self, store, on_complete=None):
        super().__init__(store, on_complete)
        self.offsets = []

    def receive(self, chunk):
        self.offsets.append(chunk.offset)
        return super().receive(chunk)


class FollowerRuntime:
    """What the view needs of a NodeRuntime: its status and receiver."""

    node_id = FOLLOWER

    def __init__(self, store, term=4):
        self.term = term
        self.completed = []
        self.snapshot_receiver = RecordingReceiver(
            store, lambda meta, c: self.completed.append(meta)
        )

    def status(self):
        return NodeStatus(FOLLOWER, "follower", self.term, LEADER, 0, 0, 0, ())

    def snapshot_chunk_received(self, leader, term):
        self.chunks_from = (leader, term)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a connection the proxy cut: expected


class DjangoServer:
    """The project's URLs on 127.0.0.1, one thread per request."""

    def __init__(self):
        self._server = _ThreadingWSGIServer(("127.0.0.1", 0), _QuietHandler)
        self._server.set_app(WSGIHandler())
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


class DroppingProxy:
    """Forwards connections to ``upstream``. ``cut_request_at(n)``: once n
    bytes of requests have gone up in all, close both sides at once (the
    request is cut off). ``drop_reply_after(n)``: once n bytes have gone
    up, close both sides when the next reply starts, forwarding none of it
    (the request was handled, its answer lost). Each fires once."""

    def __init__(self, upstream: str):
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self.sent_up = 0
        self._cut_at: int | None = None
        self._drop_after: int | None = None
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_request_at(self, n: int) -> None:
        self._cut_at = n

    def drop_reply_after(self, n: int) -> None:
        self._drop_after = n

    def close(self):
        self._closed = True
        self._listener.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            pair = (client, server)
            threading.Thread(target=self._up, args=pair, daemon=True).start()
            threading.Thread(target=self._down, args=pair, daemon=True).start()

    def _up(self, client, server):
        try:
            while data := client.recv(65536):
                with self._lock:
                    if self._cut_at is not None and self.sent_up + len(data) > (
                        self._cut_at
                    ):
                        keep = self._cut_at - self.sent_up
                        self._cut_at = None
                        self.cuts += 1
                        server.sendall(data[:keep])
                        self.sent_up += keep
                        raise ConnectionError("cut")
                    self.sent_up += len(data)
                server.sendall(data)
            server.shutdown(socket.SHUT_WR)
        except OSError:
            _close(client, server)

    def _down(self, client, server):
        try:
            while data := server.recv(65536):
                with self._lock:
                    if self._drop_after is not None and self.sent_up >= (
                        self._drop_after
                    ):
                        self._drop_after = None
                        self.cuts += 1
                        raise ConnectionError("drop")
                client.sendall(data)
        except OSError:
            pass
        _close(client, server)


def _close(*sockets):
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
