"""A small HTTP client for a node's /api, used by the management commands
and by a follower forwarding a command. No Django imports: it runs anywhere.
"""

from __future__ import annotations

import json as jsonlib
import math
import re
import ssl
import time
import uuid
from dataclasses import dataclass

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
)

from consensus.addresses import InvalidAddress, normalise_address

# Marks a command a follower sent on to the leader, so it is never sent on
# again (a stale leader hint must not bounce a command between followers).
FORWARDED_HEADER = "X-Raft-Forwarded"
# Who a follower forwards a write for (nodes.auth.Caller.headers).
CALLER_HEADER = "X-Raft-Caller"
DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0
# Pause before retrying after a 504 or a lost connection: the leader may be
# changing, and a fast error must not turn the client into a busy loop.
RETRY_PAUSE_S = 0.1
# When a 503 carries no usable Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0
# The longest wait a Retry-After may ask for: a node asks for a second or two.
MAX_RETRY_AFTER_S = 30
_DELTA_SECONDS = re.compile(r"[0-9]{1,6}")
STATUS_KEYS = (
    "id", "role", "term", "leader", "commit_index", "last_applied",
    "last_log_index", "servers",
)  # fmt: skip


class ClientError(Exception):
    """A failure to report to a person; the message is one line."""


class ServerUnreachable(Exception):
    """Nothing reached the server, so the request is known not to have acted."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConnectionLost(Exception):
    """The request may have reached the server, but no answer came back."""

    def __init__(self, reason: str, timed_out: bool):
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    """A server's HTTP answer."""

    status: int
    body: dict | None  # the JSON object, or None if the answer was not one
    retry_after: str | None  # the raw Retry-After header


@dataclass(frozen=True)
class Commit:
    """A command the cluster committed, as told by ``server``."""

    server: str
    index: int
    term: int
    leader: str | None
    forwarded: bool


def new_session(
    ca: str | None = None, cert: tuple[str, str] | None = None
) -> requests.Session:
    """A Session for the nodes' API; with ``ca`` (a cluster on TLS) it
    verifies each server's certificate against it, and shows ``cert``
    (certificate, key), a node's own, if given."""
    session = requests.Session()
    # Cluster traffic goes straight to the nodes: an HTTP_PROXY (or .netrc)
    # meant for the outside world must not intercept loopback addresses.
    session.trust_env = False
    if ca:
        session.verify = ca
        session.cert = cert
    return session


def node_url(address: str, path: str, ca: str | None = None) -> str:
    """The URL of ``path`` on the node at ``address``: https with a CA (a
    cluster is all-TLS or all-plain; addresses never carry a scheme)."""
    return f"{'https' if ca else 'http'}://{address}{path}"


def request_json(
    session, method, url, *, timeout, json=None, headers=None, max_bytes=None
) -> Answer:
    """Send one request; raise ServerUnreachable or ConnectionLost, never requests'
    own exceptions. With ``max_bytes``, an answer longer than that is not
    read further and counts as lost (ConnectionLost): a peer's answer is
    never read without bound."""
    try:
        response = session.request(
            method,
            url,
            json=json,
            headers=headers,
            timeout=timeout,
            stream=max_bytes is not None,
        )
        content = (
            response.content if max_bytes is None else _read_capped(response, max_bytes)
        )
    except requests.RequestException as exc:
        if _nothing_sent(exc):
            raise ServerUnreachable(_reason(exc)) from exc
        raise ConnectionLost(_reason(exc), isinstance(exc, requests.Timeout)) from exc
    try:
        body = jsonlib.loads(content)
    except (ValueError, RecursionError):
        body = None
    return Answer(
        status=response.status_code,
        body=body if isinstance(body, dict) else None,
        retry_after=response.headers.get("Retry-After"),
    )


def _read_capped(response, max_bytes: int) -> bytes:
    """The body of a streamed response, at most ``max_bytes`` of it;
    ConnectionLost (and the connection closed) past that."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise ConnectionLost(
                    f"the answer is over {max_bytes} bytes", timed_out=False
                )
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _nothing_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before a byte of it reached the server."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.InvalidURL)):
        return True
    if _ssl_cause(exc) is not None:
        return True  # the TLS handshake failed: no request was sent
    if isinstance(exc, requests.ConnectionError):
        cause = _urllib3_cause(exc)
        return isinstance(cause, (NewConnectionError, ConnectTimeoutError))
    return False


def _urllib3_cause(exc):
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return cause


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError behind a failed request (a failed handshake), if any."""
    seen = set()
    pending = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLError):
            return error
        pending.extend([error.__cause__, error.__context__])
        pending.extend(a for a in error.args if isinstance(a, BaseException))
        pending.append(getattr(error, "reason", None))
    return None


def ssl_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"TLS: certificate verify failed ({error.verify_message})"
    return f"TLS: {(error.reason or str(error)).lower().replace('_', ' ')}"


def _reason(exc: requests.RequestException) -> str:
    """A few words on why a request failed, e.g. 'connection refused'."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if (ssl_error := _ssl_cause(exc)) is not None:
        return ssl_reason(ssl_error)
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    cause = _urllib3_cause(exc)
    if isinstance(cause, NameResolutionError):
        return "cannot resolve the host name"
    if isinstance(cause, NewConnectionError):
        os_error = cause.__cause__
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(os_error, OSError) and os_error.strerror:
            return os_error.strerror.lower()
        return "cannot connect"
    if isinstance(exc, requests.ConnectionError):
        return "the connection was lost before an answer came"
    return type(exc).__name__


def parse_retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds form only): a few
    ASCII digits, at most MAX_RETRY_AFTER_S; anything else (a date, "nan",
    "1e9", a negative) is DEFAULT_RETRY_AFTER_S. A server, or whoever
    answers in its place, cannot park a client for long."""
    if not isinstance(value, str) or not _DELTA_SECONDS.fullmatch(value.strip()):
        return DEFAULT_RETRY_AFTER_S
    return float(min(int(value.strip()), MAX_RETRY_AFTER_S))


def relayable_retry_after(value: str | None) -> str | None:
    """A peer's Retry-After as this node passes it on: whole seconds within
    bounds, or None when it sent none."""
    if value is None:
        return None
    return str(math.ceil(parse_retry_after(value)))


class RaftClient:
    """Talks to one server's /api for a management command.

    ``timeout_s`` bounds the whole call, retries included. Every failure is
    a ClientError with one line for a person.
    """

    def __init__(
        self,
        server: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        ca: str | None = None,
        token: str | None = None,
        session=None,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        """``ca``: the cluster's CA certificate; with it the client speaks
        HTTPS and verifies the server's certificate against it. ``token``:
        the API token sent with every call (CONTRACT.md, Security)."""
        try:
            self.server = normalise_address(server)
        except InvalidAddress as exc:
            raise ClientError(str(exc)) from None
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ClientError(
                f"the timeout must be a positive number of seconds, not {timeout_s:g}"
            )
        self.timeout_s = timeout_s
        # One client session per client object (dissertation §6.3): each
        # command gets the next seq, and its retries repeat the pair, so the
        # cluster applies it once.
        self.client_id = str(uuid.uuid4())
        self._seq = 0
        self.ca = ca
        self.token = token
        self._session = session or new_session(ca)
        if token:
            self._session.headers["Authorization"] = f"Token {token}"
        self._clock = clock
        self._sleep = sleep

    def close(self):
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _url(self, path):
        return node_url(self.server, path, self.ca)

    def _timeout(self, remaining_s):
        return (min(CONNECT_TIMEOUT_S, remaining_s), remaining_s)

    def submit(self, command: str) -> Commit:
        """POST /api/commands until committed, or a ClientError.

        The next (client_id, seq) of this client, sent again unchanged on
        every retry, makes retrying safe: the cluster applies a pair once
        (a retry after its session ended gets 409 conflict, never applied).
        """
        self._seq += 1
        body = {"command": command, "client_id": self.client_id, "seq": self._seq}
        return self._commit(self._until_committed(body, "the command"))

    def submit_batch(self, commands: list[str]) -> BatchCommit:
        """POST /api/commands {"commands": [...]}: consecutive entries, each
        with the next seq of this client, retried as submit() is."""
        first = self._seq + 1
        self._seq += len(commands)
        body = {"commands": commands, "client_id": self.client_id, "seq": first}
        answer = self._until_committed(body, "each command")
        entries = (answer.body or {}).get("entries")
        if not (
            isinstance(entries, list)
            and len(entries) == len(commands)
            and all(
                isinstance(e, dict)
                and isinstance(e.get("index"), int)
                and isinstance(e.get("term"), int)
                for e in entries
            )
        ):
            raise ClientError(
                f"outcome unknown: unexpected answer from {self.server} "
                "(HTTP 200 without an index and term per command)"
            )
        return BatchCommit(
            server=self.server,
            entries=[(e["index"], e["term"]) for e in entries],
            leader=answer.body.get("leader"),
            forwarded=answer.body.get("forwarded") is True,
        )

    def _until_committed(self, body: dict, what: str) -> Answer:
        """Send ``body`` until a 200 answer, or a ClientError saying whether
        ``what`` may have committed."""
        deadline = self._clock() + self.timeout_s
        maybe_sent = False  # whether an earlier attempt may have reached a log
        while (remaining := deadline - self._clock()) > 0:
            try:
                answer = self._send_command(body, remaining)
            except ServerUnreachable as exc:
                if maybe_sent:
                    raise ClientError(
                        f"outcome unknown: lost {self.server} and cannot reach it "
                        f"again ({exc.reason}); {what} may or may not commit"
                    ) from None
                raise ClientError(f"cannot reach {self.server}: {exc.reason}") from None
            except ConnectionLost:
                maybe_sent = True
                self._pause(RETRY_PAUSE_S, deadline)
                continue

            error = answer.body.get("error") if answer.body else None
            if answer.status == 200:
                return answer
            if answer.status == 503 and error == "no_leader":
                # Nothing was appended; wait as long as the server asked, but
                # never spin on "Retry-After: 0".
                delay = max(RETRY_PAUSE_S, parse_retry_after(answer.retry_after))
                self._pause(delay, deadline)
            elif answer.status == 504:
                maybe_sent = True
                self._pause(RETRY_PAUSE_S, deadline)
            elif answer.status >= 500:
                # The command may have been appended before the failure.
                raise ClientError(
                    f"outcome unknown: {self._describe(answer)}; "
                    f"{what} may or may not commit"
                )
            else:
                raise ClientError(self._describe(answer))
        if maybe_sent:
            raise ClientError(
                f"outcome unknown: timed out after {self.timeout_s:g} s "
                f"({what} may or may not commit)"
            )
        raise ClientError(f"no leader known (tried for {self.timeout_s:g} s)")

    def _send_command(self, body: dict, remaining_s: float) -> Answer:
        """One attempt at POST /api/commands; raise ServerUnreachable or
        ConnectionLost if no answer came."""
        return self._request("POST", "/api/commands", body, remaining_s)

    def _get_status(self, remaining_s: float) -> Answer:
        return self._request("GET", "/api/status", None, remaining_s)

    def _request(self, method, path, body, remaining_s) -> Answer:
        return request_json(
            self._session,
            method,
            self._url(path),
            json=body,
            timeout=self._timeout(remaining_s),
        )

    def status(self) -> dict:
        """GET /api/status: the server's status as a dict, or a ClientError."""
        try:
            answer = self._get_status(self.timeout_s)
        except ServerUnreachable as exc:
            raise ClientError(f"cannot reach {self.server}: {exc.reason}") from None
        except ConnectionLost as exc:
            if exc.timed_out:
                raise ClientError(
                    f"no answer from {self.server} within {self.timeout_s:g} s"
                ) from None
            # A node on TLS closes a plain HTTP connection without a word.
            hint = "" if self.ca else " (if it serves HTTPS, give --ca)"
            raise ClientError(
                f"no answer from {self.server}: {exc.reason}{hint}"
            ) from None
        if answer.status != 200:
            raise ClientError(self._describe(answer))
        body = answer.body
        if not (body and _looks_like_status(body)):
            raise ClientError(
                f"unexpected answer from {self.server}: HTTP 200, not a status"
            )
        return body

    def stream(self, path: str, timeout_s: float):
        """GET ``path`` as a streamed requests Response (a 200), for large
        bodies; ClientError for anything else. The caller closes it."""
        try:
            response = self._session.get(
                self._url(path), stream=True, timeout=(CONNECT_TIMEOUT_S, timeout_s)
            )
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach {self.server}: {_reason(exc)}") from None
        if response.status_code == 200:
            return response
        with response:
            try:
                body = response.json()
            except ValueError:
                body = None
        answer = Answer(
            response.status_code, body if isinstance(body, dict) else None, None
        )
        raise ClientError(self._describe(answer))

    def _pause(self, seconds, deadline):
        self._sleep(max(0.0, min(seconds, deadline - self._clock())))

    def _commit(self, answer: Answer) -> Commit:
        body = answer.body or {}
        index, term = body.get("index"), body.get("term")
        if not (isinstance(index, int) and isinstance(term, int)):
            raise ClientError(
                f"outcome unknown: unexpected answer from {self.server} "
                "(HTTP 200 without index and term); the command may or may not commit"
            )
        return Commit(
            server=self.server,
            index=index,
            term=term,
            leader=body.get("leader"),
            forwarded=body.get("forwarded") is True,
        )

    def _describe(self, answer: Answer) -> str:
        """'<server> answered 400 bad_request: <detail>', or a note that the
        answer was not the API's JSON."""
        body = answer.body
        if body and isinstance(body.get("error"), str):
            detail = " ".join(str(body.get("detail", "")).split())
            if answer.status == 401 and not self.token:
                detail += " Give --token or set RAFT_TOKEN."
            text = f"{self.server} answered {answer.status} {body['error']}"
            return f"{text}: {detail}" if detail else text
        return (
            f"unexpected answer from {self.server}: "
            f"HTTP {answer.status}, not the API's JSON"
        )


def _looks_like_status(body: dict) -> bool:
    servers = body.get("servers")
    return (
        all(key in body for key in STATUS_KEYS)
        and isinstance(servers, list)
        and all(isinstance(server, dict) for server in servers)
    )


@dataclass(frozen=True)
class BatchCommit:
    """A batch of commands the cluster committed: (index, term) of each."""

    server: str
    entries: list[tuple[int, int]]
    leader: str | None
    forwarded: bool


def describe_batch(commit: BatchCommit) -> str:
    """One line: how many, their indexes, who answered."""
    first, last = commit.entries[0][0], commit.entries[-1][0]
    terms = sorted({term for _, term in commit.entries})
    term_text = ", ".join(str(t) for t in terms)
    text = (
        f"Committed {len(commit.entries)} commands at indexes {first}-{last} "
        f"(term {term_text}) by {commit.server}"
    )
    if commit.forwarded:
        return f"{text}, forwarded to leader {commit.leader}"
    return f"{text}, the leader (not forwarded)"


def describe_commit(commit: Commit) -> str:
    """One line: index and term, who answered, and whether it was forwarded."""
    text = f"Committed at index {commit.index} (term {commit.term}) by {commit.server}"
    if commit.forwarded:
        return f"{text}, forwarded to leader {commit.leader}"
    return f"{text}, the leader (not forwarded)"


def describe_status(status: dict) -> list[str]:
    """A short human-readable summary of /api/status, one item per line."""
    servers = status.get("servers") or []
    lines = [
        f"id:             {status['id']}",
        f"role:           {status['role']}",
        f"term:           {status['term']}",
        f"leader:         {status['leader'] or 'none known'}",
        f"commit index:   {status['commit_index']}",
        f"last applied:   {status['last_applied']}",
        f"last log index: {status['last_log_index']}",
    ]
    # Not in the contract's /api/status: a node that predates snapshots
    # leaves them out.
    if "snapshot_index" in status:
        snapshot = status["snapshot_index"] or "none"
        first = status.get("first_log_index") or 1
        compacted = f" (log starts at {first})" if first > 1 else ""
        lines.append(f"snapshot index: {snapshot}{compacted}")
    if not servers:
        lines.append("servers:        none")
    for position, server in enumerate(servers):
        label = "servers:" if position == 0 else ""
        kind = "voter" if server.get("voter") else "learner"
        lines.append(f"{label:<16}{server.get('id')} ({kind})")
    return lines
