"""raftclient.Client: the key-value store and commands of a cluster, over
its HTTP API (CONTRACT.md). No Django imports."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from nodes.client import DEFAULT_TIMEOUT_S, Commit

from .transport import Reply, Transport, kv_path, unexpected

CONSISTENCY = ("linearizable", "leader", "stale")


@dataclass(frozen=True)
class Item:
    """A key's value and ``revision`` (the log index that last wrote it);
    ``applied_index``: how far the answering server had applied, on reads."""

    key: str
    value: str
    revision: int
    applied_index: int | None = None


@dataclass(frozen=True)
class Event:
    """A change seen by a watch: ``type`` is "put" or "delete" (``value``
    is then None), ``revision`` the change's log index."""

    type: str
    key: str
    value: str | None
    revision: int


class Client:
    """A cluster's client; see the raftclient module for examples.

    ``servers``: "host:port" or ":port" addresses (a list, or one string,
    comma-separated). ``token``: sent as ``Authorization: Token``. ``ca``:
    the cluster's CA file; with it, HTTPS. ``timeout``: seconds each call
    may take, retries included. Not for use by several threads at once.
    """

    def __init__(
        self,
        servers: list[str] | str,
        *,
        token: str | None = None,
        ca: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        session=None,
        clock=None,
        sleep=None,
    ):
        # session, clock and sleep are seams for tests.
        self._transport = Transport(
            servers, token=token, ca=ca, timeout=timeout,
            session=session, clock=clock, sleep=sleep,
        )  # fmt: skip
        # One client session per Client (dissertation §6.3): each write gets
        # the next seq and every retry repeats the pair, so it applies once.
        self.client_id = f"raftclient-{uuid.uuid4()}"
        self._seq = itertools.count(1)

    @property
    def servers(self) -> list[str]:
        return list(self._transport.servers)

    @property
    def server(self) -> str:
        """The server the next call goes to first (the last that answered)."""
        return self._transport.server

    def close(self) -> None:
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # --- writes -----------------------------------------------------------------

    def put(self, key: str, value: str, prev_revision: int | None = None) -> Item:
        """Set ``key``; with ``prev_revision`` only if the key's revision is
        that (0: only if absent), else PreconditionFailed."""
        body = {"value": value, **self._session_pair()}
        if prev_revision is not None:
            body["prev_revision"] = prev_revision
        reply = self._transport.call("PUT", kv_path(key), body=body, write=True)
        revision = reply.body.get("revision")
        if not isinstance(revision, int):
            raise unexpected(reply, "the key's revision", write=True)
        return Item(key, value, revision)

    def cas(self, key: str, value: str, prev_revision: int) -> Item:
        """Compare-and-set: put only if the key is at ``prev_revision``."""
        if not isinstance(prev_revision, int):
            raise TypeError("cas() needs the expected revision (0: absent)")
        return self.put(key, value, prev_revision)

    def delete(self, key: str, prev_revision: int | None = None) -> int:
        """Delete ``key`` (NotFound if absent); the delete's revision."""
        params = self._session_pair()
        if prev_revision is not None:
            params["prev_revision"] = prev_revision
        reply = self._transport.call("DELETE", kv_path(key), params=params, write=True)
        revision = reply.body.get("revision")
        if not isinstance(revision, int):
            raise unexpected(reply, "the delete's revision", write=True)
        return revision

    def submit(self, command: str) -> Commit:
        """Commit one of the toy's commands (POST /api/commands)."""
        body = {"command": command, **self._session_pair()}
        reply = self._transport.call("POST", "/api/commands", body=body, write=True)
        index, term = reply.body.get("index"), reply.body.get("term")
        if not (isinstance(index, int) and isinstance(term, int)):
            raise unexpected(reply, "index and term", write=True)
        return Commit(
            server=reply.server,
            index=index,
            term=term,
            leader=reply.body.get("leader"),
            forwarded=reply.body.get("forwarded") is True,
        )

    def _session_pair(self) -> dict:
        return {"client_id": self.client_id, "seq": next(self._seq)}

    # --- reads ------------------------------------------------------------------

    def get(self, key: str, consistency: str = "linearizable") -> Item:
        """The key's value; NotFound if absent."""
        params = {"consistency": _checked(consistency)}
        reply = self._transport.call("GET", kv_path(key), params=params)
        return _item(reply, reply.body, reply.body.get("applied_index"))

    def list(
        self, prefix: str = "", consistency: str = "linearizable", page: int = 100
    ) -> Iterator[Item]:
        """Every key under ``prefix`` in byte order, fetched ``page`` at a
        time. Each page is read at ``consistency`` on its own: keys changed
        between pages may be seen before or after the change."""
        params = {"prefix": prefix, "limit": page, "consistency": _checked(consistency)}
        while True:
            reply = self._transport.call("GET", "/api/kv", params=params)
            items, more = reply.body.get("items"), reply.body.get("more")
            if not isinstance(items, list):
                raise unexpected(reply, "items")
            applied = reply.body.get("applied_index")
            for fields in items:
                yield _item(reply, fields, applied)
            if more is not True or not items:
                return
            params["after"] = items[-1]["key"]

    def watch(
        self, prefix: str = "", after: int | None = None, timeout: float = 30
    ) -> Iterator[Event]:
        """The changes under ``prefix`` with a revision above ``after``
        (None: from what the server has applied now), forever. Each long
        poll waits up to ``timeout`` seconds and the next resumes after the
        revision the last covered, on whichever server answers. Compacted
        if ``after`` is older than the history kept; a poll that fails for
        longer than the client's ``timeout`` raises as any call does."""
        while True:
            params = {"prefix": prefix, "timeout": timeout}
            if after is not None:
                params["after"] = after
            reply = self._transport.call(
                "GET", "/api/watch", params=params, wait_s=timeout
            )
            events, covered = reply.body.get("events"), reply.body.get("revision")
            if not (isinstance(events, list) and isinstance(covered, int)):
                raise unexpected(reply, "events and revision")
            for fields in events:
                yield _event(reply, fields)
            after = covered


def _checked(consistency: str) -> str:
    if consistency not in CONSISTENCY:
        raise ValueError(f"consistency is one of {', '.join(CONSISTENCY)}")
    return consistency


def _item(reply: Reply, fields, applied) -> Item:
    if not (
        isinstance(fields, dict)
        and isinstance(fields.get("key"), str)
        and isinstance(fields.get("value"), str)
        and isinstance(fields.get("revision"), int)
    ):
        raise unexpected(reply, "key, value and revision")
    applied = applied if isinstance(applied, int) else None
    return Item(fields["key"], fields["value"], fields["revision"], applied)


def _event(reply: Reply, fields) -> Event:
    if not (
        isinstance(fields, dict)
        and fields.get("type") in ("put", "delete")
        and isinstance(fields.get("key"), str)
        and isinstance(fields.get("revision"), int)
    ):
        raise unexpected(reply, "an event's type, key and revision")
    return Event(fields["type"], fields["key"], fields.get("value"), fields["revision"])
