"""The leader's side of a snapshot transfer: one thread per transfer that
streams the file to one peer in chunks, resuming at the offset the peer
reports, and reports the outcome through a callback."""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..peer_connection import close_quietly, open_connection
from ..transport import SECRET_HEADER
from ..validation import read_reply
from .store import SnapshotMeta, SnapshotStore
from .wire import (
    CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    SnapshotChunk,
    chunk_to_dict,
    reply_from_dict,
)

logger = logging.getLogger(__name__)


class Outcome(Enum):
    INSTALLED = "installed"  # the peer holds the whole file, durably
    STALE_TERM = "stale_term"  # the peer has a newer term: step down
    REJECTED = "rejected"  # the peer refused a chunk (4xx), e.g. checksum
    TIMED_OUT = "timed_out"  # the deadline passed first
    CANCELLED = "cancelled"  # cancel(): the leader moved on


@dataclass(frozen=True, slots=True)
class SendResult:
    peer: str
    snapshot: SnapshotMeta
    outcome: Outcome
    # The term the peer last replied with (the sender's own if none).
    term: int
    bytes_sent: int
    seconds: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.INSTALLED


class SnapshotSender:
    """Streams ``snapshot`` to ``peer`` on a thread of its own.

    Separate from the peer's AppendEntries sender (consensus/transport.py),
    with its own connection: heartbeats keep flowing to that peer and every
    other while the chunks go. A failed chunk (connection dropped, timeout,
    5xx) is retried after a pause on a new connection, from the offset the
    peer reports, until ``deadline_s`` (checked between requests; each
    request is bounded by ``timeout``, so is a cancel()). ``on_done(result)`` is called once,
    from this thread; the runtime puts it on its inbox and steps the core.
    """

    def __init__(
        self,
        store: SnapshotStore,
        snapshot: SnapshotMeta,
        *,
        peer: str,
        leader_id: str,
        term: int,
        on_done: Callable[[SendResult], None],
        secret: str = "",
        chunk_bytes: int = CHUNK_BYTES,
        timeout: tuple[float, float] = (1.0, 10.0),
        deadline_s: float = 300.0,
        retry_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ):
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_BYTES}")
        self.store = store
        self.snapshot = snapshot
        self.peer = peer
        self.leader_id = leader_id
        self.term = term
        self._on_done = on_done
        self._ssl_context = ssl_context
        self._chunk_bytes = chunk_bytes
        self._timeout = timeout
        self._deadline_s = deadline_s
        self._retry_s = retry_s
        self._clock = clock
        self._headers = {"Content-Type": "application/json"}
        if secret:
            self._headers[SECRET_HEADER] = secret
        self._cancelled = threading.Event()
        # Set before on_done is called: a result being handled means this
        # transfer is over, although its thread may not have ended yet.
        self._finished = threading.Event()
        self._connection: http.client.HTTPConnection | None = None
        self.bytes_sent = 0
        self.attempts = 0  # chunk requests made, retries included
        self._thread = threading.Thread(
            target=self._run, name=f"raft-snapshot-{peer}", daemon=True
        )

    def start(self) -> SnapshotSender:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop at the next chunk; on_done then reports CANCELLED."""
        self._cancelled.set()

    @property
    def running(self) -> bool:
        """Started and not yet reported."""
        return self._thread.is_alive() and not self._finished.is_set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = self._clock()
        try:
            outcome, term, detail = self._transfer(started + self._deadline_s)
        except Exception as exc:  # a bug must still end in a report
            logger.exception("snapshot transfer to %s failed", self.peer)
            outcome, term, detail = Outcome.REJECTED, self.term, repr(exc)
        finally:
            self._disconnect()
        result = SendResult(
            peer=self.peer,
            snapshot=self.snapshot,
            outcome=outcome,
            term=term,
            bytes_sent=self.bytes_sent,
            seconds=self._clock() - started,
            detail=detail,
        )
        logger.info(
            "snapshot %s to %s: %s (%s)",
            self.snapshot.name,
            self.peer,
            outcome.value,
            detail or f"{self.bytes_sent} bytes",
        )
        self._finished.set()
        self._on_done(result)

    def _transfer(self, deadline: float) -> tuple[Outcome, int, str]:
        offset = 0
        with open(self.store.data_path(self.snapshot), "rb") as f:
            while True:
                if self._cancelled.is_set():
                    return Outcome.CANCELLED, self.term, ""
                if self._clock() >= deadline:
                    return Outcome.TIMED_OUT, self.term, f"at offset {offset}"
                f.seek(offset)
                data = f.read(min(self._chunk_bytes, self.snapshot.size - offset))
                try:
                    status, body = self._post(self._chunk(offset, data))
                except (OSError, http.client.HTTPException) as exc:
                    logger.debug("snapshot chunk to %s failed: %r", self.peer, exc)
                    self._disconnect()
                    self._cancelled.wait(self._retry_s)
                    continue
                if status >= 500:
                    self._cancelled.wait(self._retry_s)
                    continue
                if status != 200:
                    return Outcome.REJECTED, self.term, f"HTTP {status}: {body[:200]}"
                reply = reply_from_dict(json.loads(body))
                if reply.term > self.term:
                    return Outcome.STALE_TERM, reply.term, f"peer term {reply.term}"
                if reply.done:
                    return Outcome.INSTALLED, reply.term, ""
                # Where the peer says it is: the next chunk, or a resume
                # after a lost one, or 0 if it started over. A peer that
                # claims the whole file but not done gets the last chunk
                # again rather than an empty one.
                offset = reply.offset
                if offset >= self.snapshot.size:
                    offset = max(0, self.snapshot.size - self._chunk_bytes)

    def _chunk(self, offset: int, data: bytes) -> SnapshotChunk:
        s = self.snapshot
        return SnapshotChunk(
            term=self.term,
            source=self.leader_id,
            dest=self.peer,
            last_included_index=s.last_included_index,
            last_included_term=s.last_included_term,
            configuration=s.configuration,
            configuration_index=s.configuration_index,
            size=s.size,
            checksum=s.checksum,
            offset=offset,
            data=data,
            done=offset + len(data) == s.size,
        )

    def _post(self, chunk: SnapshotChunk) -> tuple[int, str]:
        body = json.dumps(chunk_to_dict(chunk)).encode()
        connection = self._connect()
        self.attempts += 1
        connection.request("POST", "/raft/install_snapshot", body, self._headers)
        response = connection.getresponse()
        data = read_reply(response).decode("utf-8", "replace")
        if response.will_close:
            self._disconnect()
        self.bytes_sent += len(chunk.data)
        return response.status, data

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = open_connection(
                self.peer, self._timeout, self._ssl_context
            )
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            close_quietly(connection, self.peer)
