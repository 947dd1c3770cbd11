"""Sends messages to peers over HTTP with requests, one thread per peer.

Each peer has its own thread, queue and keep-alive Session, so a dead or
slow peer stalls only its own queue, never the loop or the other peers.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Callable

import requests

from .core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Message,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
    Unreachable,
)
from .serializers import message_from_dict, message_to_dict

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Raft-Secret"

# Request class -> (endpoint under /raft/, reply class or None).
ROUTES: dict[type[Message], tuple[str, type[Message] | None]] = {
    AppendEntries: ("append_entries", AppendEntriesReply),
    RequestVote: ("request_vote", RequestVoteReply),
    TimeoutNow: ("timeout_now", None),
}


class PeerSender:
    def __init__(
        self,
        node_id: str,
        peer: str,
        deliver: Callable[[Message], None],
        secret: str,
        timeout: tuple[float, float],
    ):
        self.node_id = node_id
        self.peer = peer
        self._deliver = deliver
        self._timeout = timeout
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if secret:
            self._session.headers[SECRET_HEADER] = secret
        self._thread = threading.Thread(
            target=self._run, name=f"raft-send-{peer}", daemon=True
        )
        self._thread.start()

    def send(self, message: Message) -> None:
        self._queue.put(message)

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            reply = self._call(message)
            if reply is not None:
                self._deliver(reply)
        self._session.close()

    def _call(self, message: Message) -> Message | None:
        endpoint, reply_class = ROUTES[type(message)]
        try:
            response = self._session.post(
                f"http://{self.peer}/raft/{endpoint}",
                data=json.dumps(message_to_dict(message)),
                timeout=self._timeout,
            )
            response.raise_for_status()
            if reply_class is None:
                return None
            return message_from_dict(reply_class, response.json())
        except Exception as exc:  # any failure means "not delivered"
            logger.debug("send to %s failed: %s", self.peer, exc)
            # The core keeps one AppendEntries in flight per peer; telling
            # it the send failed lets the next heartbeat try again.
            return Unreachable(term=0, source=self.peer, dest=self.node_id)


class Transport:
    def __init__(
        self,
        node_id: str,
        deliver: Callable[[Message], None],
        secret: str = "",
        timeout: tuple[float, float] = (0.25, 0.5),
    ):
        self.node_id = node_id
        self._deliver = deliver
        self._secret = secret
        self._timeout = timeout
        self._senders: dict[str, PeerSender] = {}

    def send(self, message: Message) -> None:
        sender = self._senders.get(message.dest)
        if sender is None:
            sender = PeerSender(
                self.node_id, message.dest, self._deliver, self._secret, self._timeout
            )
            self._senders[message.dest] = sender
        sender.send(message)

    def retain(self, peers) -> None:
        """Close the senders of every peer not in ``peers`` (loop thread)."""
        for peer in [p for p in self._senders if p not in peers]:
            self._senders.pop(peer).close()

    def close(self) -> None:
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
