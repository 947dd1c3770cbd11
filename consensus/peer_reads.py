"""A follower's linearizable read asks the leader for a read index
(dissertation §6.4: "a follower ... could issue a request to the leader
just to learn the current read index"), over peer RPC: POST
/raft/read_index, answered once the leader has confirmed its leadership.
The follower then serves the read from its own state machine once it has
applied through that index, so reads spread over the cluster.

Reads that wait together share one request: a fetcher thread sends one at
a time, for every read that arrived before it was sent (a read arriving
while one is on its way waits for the next, since the leader must confirm
its leadership after the read began). So a follower under 64 concurrent
reads sends the leader a few requests per round trip, not 64.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading

from .peer_connection import close_quietly, open_connection
from .transport import SECRET_HEADER
from .validation import MAX_PEER_INT

logger = logging.getLogger(__name__)

READ_INDEX_PATH = "/raft/read_index"
MAX_ANSWER_BYTES = 4096


class ReadIndexUnavailable(Exception):
    """The leader gave no read index; the message says why, in one line."""


class _Batch:
    """The reads one request answers."""

    def __init__(self, leader: str):
        self.leader = leader
        self.done = threading.Event()
        self.index: int | None = None
        self.error: ReadIndexUnavailable | None = None
        # Inline reads' functions, called with the index or the error.
        self.then: list = []


class PeerReads:
    # How long one request to the leader may take.
    TIMEOUT_S = 5.0

    def __init__(
        self, node_id: str, secret: str, ssl_context: ssl.SSLContext | None = None
    ):
        self.node_id = node_id
        self._headers = {"Content-Type": "application/json"}
        if secret:
            self._headers[SECRET_HEADER] = secret
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._lock = threading.Condition()
        self._waiting: _Batch | None = None
        self._fetcher: threading.Thread | None = None

    def read_index(self, leader: str, timeout_s: float) -> int:
        """The leader's read index for a read starting now; raises
        ReadIndexUnavailable."""
        batch = self._join(leader)
        if not batch.done.wait(timeout_s):
            raise ReadIndexUnavailable(
                f"no read index from the leader {leader} within {timeout_s:g} s"
            )
        if batch.error is not None:
            raise batch.error
        return batch.index

    def read_index_later(self, leader: str, then) -> None:
        """read_index without waiting: ``then(index)``, or
        ``then(ReadIndexUnavailable)``, on the fetcher thread (an inline
        read, nodes/inline_kv.py). No timeout but the request's own."""
        self._join(leader, then)

    def _join(self, leader: str, then=None) -> _Batch:
        """The batch a read starting now rides in."""
        with self._lock:
            if self._waiting is None or self._waiting.leader != leader:
                self._waiting = _Batch(leader)
            batch = self._waiting
            if then is not None:
                batch.then.append(then)
            if self._fetcher is None:
                self._fetcher = threading.Thread(
                    target=self._fetch_forever, name="raft-read-index", daemon=True
                )
                self._fetcher.start()
            self._lock.notify()
        return batch

    def _fetch_forever(self) -> None:
        while True:
            with self._lock:
                while self._waiting is None:
                    self._lock.wait()
                batch, self._waiting = self._waiting, None
            try:
                batch.index = self._ask(batch.leader, self.TIMEOUT_S)
            except ReadIndexUnavailable as exc:
                batch.error = exc
            except Exception as exc:  # noqa: BLE001 - the fetcher must live on
                # Every later read waits on this thread: whatever went wrong
                # fails this batch only.
                self._drop(batch.leader)
                batch.error = ReadIndexUnavailable(f"asking {batch.leader}: {exc!r}")
            batch.done.set()
            for then in batch.then:
                try:
                    then(batch.error if batch.error is not None else batch.index)
                except Exception:
                    logger.exception("answering an inline read failed")

    def _ask(self, leader: str, timeout_s: float) -> int:
        """One request for a read index (the fetcher thread's)."""
        body = json.dumps({"source": self.node_id, "dest": leader}).encode()
        for attempt in (1, 2):
            connection = self._connection(leader, timeout_s)
            try:
                connection.request("POST", READ_INDEX_PATH, body, self._headers)
                response = connection.getresponse()
                answer = response.read(MAX_ANSWER_BYTES + 1)
                break
            except (OSError, http.client.HTTPException) as exc:
                self._drop(leader)
                # A kept-alive connection the leader closed meanwhile fails
                # at once: try a fresh one, once.
                if attempt == 2:
                    raise ReadIndexUnavailable(
                        f"no answer from the leader {leader} ({exc})"
                    ) from None
        if response.status != 200 or len(answer) > MAX_ANSWER_BYTES:
            self._drop(leader)
            raise ReadIndexUnavailable(
                f"the leader {leader} answered HTTP {response.status}"
            )
        try:
            index = json.loads(answer).get("index")
        except (ValueError, AttributeError):
            index = None
        if isinstance(index, bool) or not isinstance(index, int):
            raise ReadIndexUnavailable(f"the leader {leader} sent no read index")
        if not 0 <= index <= MAX_PEER_INT:
            raise ReadIndexUnavailable(f"the leader {leader} sent index {index}")
        return index

    def _connection(self, leader: str, timeout_s: float) -> http.client.HTTPConnection:
        cached = getattr(self._local, "connection", None)
        # (No socket: the leader closed it after its last answer.)
        if cached is not None and cached[0] == leader and cached[1].sock is not None:
            connection = cached[1]
            connection.sock.settimeout(timeout_s)
            return connection
        self._drop(leader)
        try:
            connection = open_connection(
                leader, (min(2.0, timeout_s), timeout_s), self._ssl_context
            )
        except (OSError, http.client.HTTPException) as exc:
            raise ReadIndexUnavailable(
                f"cannot reach the leader {leader} ({exc})"
            ) from None
        self._local.connection = (leader, connection)
        return connection

    def _drop(self, leader: str) -> None:
        cached = getattr(self._local, "connection", None)
        if cached is not None:
            close_quietly(cached[1], cached[0])
            self._local.connection = None
