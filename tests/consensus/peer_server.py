"""A loopback peer for transport tests that can be stopped like SIGSTOP.

While stopped it accepts connections but reads and answers nothing, as a
SIGSTOPped gunicorn whose kernel still completes connections and buffers
requests. ``resume()`` answers them all, like gunicorn after SIGCONT: a
request on a connection the sender has given up on is still handled.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

from consensus.core.messages import AppendEntriesReply, RequestVoteReply
from consensus.serializers import message_to_dict


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the transport expects
    timeout = 10  # a handler never outlives a test for long

    def handle(self):
        peer = self.server.peer
        peer.connected()
        if peer.running.wait(timeout=30):
            super().handle()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        data = json.loads(self.rfile.read(length))
        endpoint = self.path.rsplit("/", 1)[-1]
        self.server.peer.record(endpoint, data)
        reply = self.server.peer.reply_to(endpoint, data)
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # Answering a request the sender gave up on fails, as for gunicorn.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class PeerServer:
    def __init__(self, stopped: bool = False, ssl_context=None):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        if ssl_context is not None:
            # HTTPS, as a node with TLS serves /raft/.
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True
            )
        self._server.peer = self
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # (endpoint, request JSON) in the order requests were read.
        self.received: list[tuple[str, dict]] = []
        self.connections = 0
        self.running = threading.Event()
        if not stopped:
            self.running.set()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    def set_receive_buffer(self, size: int) -> None:
        """SO_RCVBUF of the connections accepted from now on."""
        self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def resume(self) -> None:
        self.running.set()

    def connected(self) -> None:
        with self._changed:
            self.connections += 1
            self._changed.notify_all()

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Whether ``count`` connections were accepted within timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.connections >= count, timeout=timeout
            )

    def record(self, endpoint: str, data: dict) -> None:
        with self._changed:
            self.received.append((endpoint, data))
            self._changed.notify_all()

    def requests(self) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self.received)

    def reply_to(self, endpoint: str, data: dict) -> dict:
        me, leader = data["dest"], data["source"]
        if endpoint == "append_entries":
            reply = AppendEntriesReply(
                term=data["term"],
                source=me,
                dest=leader,
                success=True,
                match_index=data["prev_log_index"],
                prev_log_index=data["prev_log_index"],
            )
        elif endpoint == "request_vote":
            reply = RequestVoteReply(
                term=data["term"], source=me, dest=leader, vote_granted=True
            )
        else:
            return {}
        return message_to_dict(reply)

    def close(self) -> None:
        self.running.set()  # let held handlers finish
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
