"""One API call against a list of servers, retried as the contract allows.
No Django imports: nodes.client's helpers are plain requests."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from consensus.addresses import normalise_address
from nodes.client import (
    CONNECT_TIMEOUT_S,
    RETRY_PAUSE_S,
    ConnectionLost,
    ServerUnreachable,
    new_session,
    node_url,
    parse_retry_after,
    request_json,
)

from .errors import OutcomeUnknown, RaftError, Unavailable, Unreachable, error_for

# 503 codes that promise nothing was appended (CONTRACT.md, HTTP API).
RETRY_LATER = ("no_leader", "overloaded")
# An attempt with less time left than this could not get an answer: its
# failure would only hide the one before.
MIN_ATTEMPT_S = 0.01


@dataclass(frozen=True)
class Reply:
    """A 200 answer's JSON object, and the server that gave it."""

    server: str
    body: dict


def parse_servers(servers: list[str] | str) -> list[str]:
    """Full ``host:port`` addresses from a list, or from one string of
    comma-separated ones. Raise ValueError (InvalidAddress)."""
    if isinstance(servers, str):
        servers = servers.split(",")
    addresses = [normalise_address(s) for s in servers if s.strip()]
    if not addresses:
        raise ValueError("give at least one server, host:port or :port")
    return list(dict.fromkeys(addresses))


def kv_path(key: str) -> str:
    """/api/kv/<key>, the key percent-encoded whole ("/" included)."""
    if not isinstance(key, str) or not key:
        raise ValueError("a key is 1 to 512 bytes of UTF-8 text")
    return "/api/kv/" + quote(key, safe="")


class Transport:
    """Sends a call to the server that last answered, moving on to the
    next on failure; owns the HTTP session."""

    def __init__(self, servers, *, token, ca, timeout, session, clock, sleep):
        self.servers = parse_servers(servers)
        if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
            raise ValueError(f"the timeout must be a positive number, not {timeout!r}")
        self.timeout = float(timeout)
        self.ca = ca
        self.token = token
        self.session = session or new_session(ca)
        if token:
            self.session.headers["Authorization"] = f"Token {token}"
        self._current = 0
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep

    @property
    def server(self) -> str:
        """The server the next call goes to first."""
        return self.servers[self._current]

    def close(self):
        self.session.close()

    def call(self, method, path, *, params=None, body=None, write=False, wait_s=0.0):
        """The Reply to a 200, or a RaftError.

        Retried on 503 no_leader/overloaded (after Retry-After), 504 and a
        lost connection, each time on the next server, until ``timeout``
        (plus ``wait_s``, a long poll's own wait) has passed. A ``write``
        carries a client_id/seq pair, so a retry cannot apply it twice;
        once an attempt may have reached a log, failing is OutcomeUnknown.
        """
        deadline = self._clock() + self.timeout + wait_s
        query = "?" + urlencode(params) if params else ""
        maybe_sent = False
        unreachable = {}  # server -> reason, since the last server answered
        last = None  # (status, code, words) of the last retried failure
        while (remaining := deadline - self._clock()) > MIN_ATTEMPT_S:
            server = self.server
            url = node_url(server, path + query, self.ca)
            timeouts = (min(CONNECT_TIMEOUT_S, remaining), remaining)
            try:
                answer = request_json(
                    self.session, method, url, json=body, timeout=timeouts
                )
            except ServerUnreachable as exc:
                unreachable[server] = exc.reason
                self._next()
                if len(unreachable) < len(self.servers):
                    continue
                reasons = "; ".join(f"{s} ({r})" for s, r in unreachable.items())
                if maybe_sent:
                    raise OutcomeUnknown(
                        None, "connection_lost",
                        f"lost the connection, then could reach no server: {reasons}; "
                        "the write may or may not have taken effect",
                    ) from None  # fmt: skip
                raise Unreachable(None, "unreachable", reasons) from None
            except ConnectionLost as exc:
                unreachable.clear()
                maybe_sent = maybe_sent or write
                last = (None, "connection_lost", self._lost(server, exc))
                self._next()
                self._pause(RETRY_PAUSE_S, deadline)
                continue
            unreachable.clear()
            body_json = answer.body or {}
            code = body_json.get("error")
            if answer.status == 200 and answer.body is not None:
                return Reply(server, answer.body)
            if answer.status == 503 and code in RETRY_LATER:
                # Nothing was appended; never spin on "Retry-After: 0".
                last = (503, code, f"{server} answered 503 {code}")
                self._next()
                delay = max(RETRY_PAUSE_S, parse_retry_after(answer.retry_after))
                self._pause(delay, deadline)
                continue
            if answer.status == 504:
                maybe_sent = maybe_sent or write
                last = (504, code or "timeout", f"{server} answered 504 timeout")
                self._next()
                self._pause(RETRY_PAUSE_S, deadline)
                continue
            error = error_for(answer.status, answer.body)
            if write and (
                answer.status == 200 or answer.status >= 500
                or (maybe_sent and answer.status == 409)
            ):  # fmt: skip
                # A 409 to a retry: its session ended, so the first attempt's
                # fate is unknown; a 500 may come after the append, and a 200
                # that is not the API's JSON is no answer.
                raise OutcomeUnknown(
                    error.status, error.code,
                    f"{server} answered {error}; the write may or may not have "
                    "taken effect",
                )  # fmt: skip
            raise error
        status, code, words = last or (None, "timeout", "no answer")
        waited = f"gave up after {self.timeout + wait_s:g} s ({words})"
        if maybe_sent:
            raise OutcomeUnknown(
                status, code, f"{waited}; the write may or may not have taken effect"
            )
        raise Unavailable(status, code, f"{waited}; nothing was changed")

    def _lost(self, server, exc: ConnectionLost) -> str:
        # A node on TLS closes a plain HTTP connection without a word.
        hint = (
            ""
            if self.ca or exc.timed_out
            else "; if it serves HTTPS, give its CA (--ca, ca=)"
        )
        return f"lost the connection to {server}: {exc.reason}{hint}"

    def _next(self):
        self._current = (self._current + 1) % len(self.servers)

    def _pause(self, seconds, deadline):
        self._sleep(max(0.0, min(seconds, deadline - self._clock())))


def unexpected(reply: Reply, what: str, write: bool = False) -> RaftError:
    """The error for a 200 whose body lacks what the contract promises."""
    detail = f"{reply.server} answered 200 without {what}"
    if write:
        return OutcomeUnknown(200, "unexpected_answer", f"{detail}; the write may "
                              "or may not have taken effect")  # fmt: skip
    return RaftError(200, "unexpected_answer", detail)
