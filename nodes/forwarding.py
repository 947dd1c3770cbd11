"""Leader or forward: a client write runs on this node's runtime when it
leads; a follower sends it on to the leader once and relays the answer.
"""

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.apps import apps
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from consensus.addresses import InvalidAddress, normalise_address
from consensus.errors import NotLeader
from consensus.membership import LeadershipMoved
from consensus.tls import TLSFiles
from consensus.transport import SECRET_HEADER

from .client import (
    FORWARDED_HEADER,
    Answer,
    ConnectionLost,
    ServerUnreachable,
    relayable_retry_after,
)
from .errors import TimedOut, Unavailable, error_answer
from .leader_link import LeaderLink

# The leader's answer to a forwarded write is a small JSON object; one
# longer than this is not read further and counts as no answer (504).
MAX_ANSWER_BYTES = 1 << 20


class Forwarder:
    """Sends client writes (commands, membership changes) to the leader.

    One instance serves a process (process_forwarder()). Each request
    thread keeps its own connection to the leader alive from one forwarded
    write to the next (nodes/leader_link.py).
    """

    def __init__(
        self,
        connect_timeout_s: float = 2.0,
        read_margin_s: float = 2.0,
        *,
        ca: str | None = None,
        cert: tuple[str, str] | None = None,
        secret: str = "",
    ):
        """``ca`` and ``cert``: on TLS, the cluster's CA, against which the
        leader's certificate is verified, and this node's own. ``secret``:
        the cluster secret, by which the leader believes this node's word
        for who the caller is (nodes.auth)."""
        self.connect_timeout_s = connect_timeout_s
        self.secret = secret
        self.ca = ca
        self.cert = cert
        # The leader answers within its own command timeout (200 or 504);
        # waiting a little longer lets that answer, not a read timeout, win.
        self.read_margin_s = read_margin_s
        self._link: LeaderLink | None = None
        self._link_lock = threading.Lock()

    def _leader_link(self) -> LeaderLink:
        # Made on first use: the TLS context reads the node's files.
        with self._link_lock:
            if self._link is None:
                context = None
                if self.ca:
                    context = (
                        TLSFiles(self.cert[0], self.cert[1], self.ca).client_context()
                        if self.cert
                        else ssl.create_default_context(cafile=self.ca)
                    )
                self._link = LeaderLink(self.connect_timeout_s, context)
            return self._link

    def forward(
        self, leader_id, method, path, body, timeout_s, accept=None, caller=None
    ) -> Answer:
        """Send a write to the leader's ``path`` for ``caller`` (a
        nodes.auth.Caller) and return its answer: one that ``accept`` takes
        (default: any 200 JSON object) or an API error shape to relay as is.

        Raise Unavailable if nothing reached the leader, TimedOut if the write
        may have reached it but no usable answer came back.
        """
        accept = accept or _is_json_200
        headers = {FORWARDED_HEADER: "1"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if caller is not None:
            headers.update(caller.headers())
        if self.secret:
            # Only ever to a member (member_leader): the secret goes where
            # every peer message already takes it.
            headers[SECRET_HEADER] = self.secret
        data = b"" if body is None else json.dumps(body, allow_nan=False).encode()
        try:
            answer, content = self._leader_link().request(
                leader_id,
                method,
                path,
                data,
                headers,
                read_timeout_s=timeout_s + self.read_margin_s,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except ServerUnreachable as exc:
            raise Unavailable(
                f"The leader {leader_id} is unreachable ({exc.reason}); "
                "nothing was appended. Retry later.",
                leader=leader_id,
            ) from None
        except ConnectionLost as exc:
            raise TimedOut(
                f"Forwarded to the leader {leader_id} but got no answer "
                f"({exc.reason}); the command may or may not commit.",
                leader=leader_id,
            ) from None
        try:
            decoded = json.loads(content)
        except (ValueError, RecursionError):
            decoded = None
        answer = replace(answer, body=decoded if isinstance(decoded, dict) else None)
        if accept(answer) or _is_api_error(answer):
            # Relayed to the client: bounded whole seconds only.
            return replace(
                answer, retry_after=relayable_retry_after(answer.retry_after)
            )
        raise TimedOut(
            f"The leader {leader_id} gave an unexpected answer (HTTP {answer.status}); "
            "the command may or may not commit.",
            leader=leader_id,
        )


def process_forwarder() -> Forwarder:
    """The Forwarder of this process (the nodes app config owns it)."""
    return apps.get_app_config("nodes").forwarder


@dataclass(frozen=True)
class Write:
    """A client write as the API takes it: how a follower sends it on.

    ``wait_s`` bounds the leader's own work on it; the forwarder waits a
    little longer. ``kind`` and ``undone`` word the refusals ("command",
    "nothing was appended").
    """

    method: str
    path: str
    body: dict | None
    wait_s: float
    kind: str = "request"
    undone: str = "nothing was changed"
    # Which 200 answers from the leader count as done (default: any JSON).
    accept: Callable[[Answer], bool] | None = None


def member_leader(leader, members) -> str | None:
    """``leader`` if a request may be sent to it: a full ``host:port``
    address among ``members`` (the configuration's servers). A leader hint
    comes from a peer's message, so a forged one must not become the place
    client writes, and the cluster secret, are sent to."""
    if not isinstance(leader, str):
        return None
    try:
        well_formed = normalise_address(leader) == leader
    except InvalidAddress:
        return None
    return leader if well_formed and leader in members else None


def leader_or_forward(runtime, action, write, *, forwarder, caller) -> Answer:
    """Run ``action(runtime)`` and answer 200 with the body it returns; if
    this node is not the leader, send ``write`` to the leader once, for
    ``caller`` (nodes.auth.Caller), and relay its answer (status, body with
    ``"forwarded": true``, Retry-After).

    Raise an ApiError (nodes.errors) when it can do neither: no leader
    known, or a forwarded request reaching a node that does not lead.
    """
    try:
        following = _followed_leader(runtime)
        if following is not None:
            raise NotLeader(following)
        return Answer(200, action(runtime), None)
    except NotLeader as exc:
        leader = exc.leader_id
        if leader is None:
            raise Unavailable(
                f"No leader is known to {runtime.node_id}; "
                f"{write.undone}. Retry later."
            ) from None
        if caller.forwarded or leader == runtime.node_id:
            # Forward at most once: a stale leader hint must not bounce the
            # request from follower to follower.
            raise Unavailable(
                f"{runtime.node_id} is not the leader (it believes {leader} is) "
                f"and does not forward a forwarded {write.kind}; {write.undone}. "
                "Retry later.",
                leader=leader,
            ) from None
        target = leader
    except LeadershipMoved as exc:
        # This leader removes itself: it handed leadership over first
        # (dissertation §3.10), and the new leader carries the request out,
        # even one forwarded here already.
        target = exc.leader_id
    members = {server.id for server in runtime.status().servers}
    if member_leader(target, members) is None:
        # A lagging member may not list a new leader yet: it learns the
        # configuration from that leader's entries, and the client retries.
        raise Unavailable(
            f"{runtime.node_id} does not forward to {target!r}: not a server of "
            f"its configuration; {write.undone}. Retry later."
        ) from None
    answer = forwarder.forward(
        target,
        write.method,
        write.path,
        write.body,
        write.wait_s,
        write.accept,
        caller=caller,
    )
    return replace(answer, body={**answer.body, "forwarded": True})


def _followed_leader(runtime) -> str | None:
    """The leader this node follows, by its published status, when that is
    another server: the write goes there without asking the loop thread,
    which would only answer NotLeader (a hand-over to the loop thread and
    back on every forwarded write). A status a step behind the loop costs
    what the loop's own answer could: the leader named may have lost its
    place, and answers so."""
    status = runtime.status()
    if status is None or status.role == "leader":
        return None
    leader = status.leader
    return leader if leader is not None and leader != runtime.node_id else None


def relay(answer: Answer) -> Response:
    """The API's response for an Answer, Retry-After included."""
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
    return Response(answer.body, status=answer.status, headers=headers)


def answer_in_process(call: Callable[[], Answer]) -> Answer:
    """``call()``'s Answer, or the one the API would give for the ApiError it
    raises: what an HTTP client of this node would have got."""
    try:
        return call()
    except APIException as exc:
        return error_answer(exc)


def _is_json_200(answer: Answer) -> bool:
    return answer.status == 200 and answer.body is not None


def is_commit(answer: Answer) -> bool:
    body = answer.body
    return (
        answer.status == 200
        and body is not None
        and isinstance(body.get("index"), int)
        and isinstance(body.get("term"), int)
    )


def _is_api_error(answer: Answer) -> bool:
    body = answer.body
    return (
        answer.status >= 400 and body is not None and isinstance(body.get("error"), str)
    )
