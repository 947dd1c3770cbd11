"""The exceptions of raftclient: one per error code of the contract
(CONTRACT.md, HTTP API), and two for answers that never came."""

from __future__ import annotations


class RaftError(Exception):
    """An error answer, or no usable answer: ``status`` is the HTTP status
    (None when no answer came), ``code`` the contract's error code and
    ``detail`` a sentence for a person. ``str()`` is one line."""

    def __init__(self, status: int | None, code: str, detail: str = ""):
        self.status = status
        self.code = code
        self.detail = " ".join(str(detail).split())
        super().__init__(self.status, self.code, self.detail)

    def __str__(self):
        words = self.code.replace("_", " ")
        return f"{words}: {self.detail}" if self.detail else words


class BadRequest(RaftError):
    """400: the request is malformed; nothing was changed."""


class Unauthorized(RaftError):
    """401: no valid token; nothing was changed."""


class Forbidden(RaftError):
    """403: the token lacks the permission; nothing was changed."""


class NotFound(RaftError):
    """404: no such key (or route)."""


class Conflict(RaftError):
    """409: e.g. a retried write whose session has ended; never applied."""


class Compacted(RaftError):
    """410: a watch asked for history no longer kept; list the keys again
    and watch from the listing's applied_index."""


class PreconditionFailed(RaftError):
    """412: a compare-and-set found the key at ``current_revision`` (0 if
    absent); nothing was changed."""

    def __init__(self, status, code, detail="", current_revision: int = 0):
        super().__init__(status, code, detail)
        self.current_revision = current_revision


class TooLarge(RaftError):
    """413: a value (or command) over 64 KiB; nothing was changed."""


class Unavailable(RaftError):
    """503 (no leader, or overloaded) until the timeout ran out, or a read
    that got no answer in time; nothing was written. Retry later."""


class OutcomeUnknown(RaftError):
    """A write was sent but its answer never came (a 504, a lost
    connection): it may or may not have taken effect."""


class Unreachable(RaftError):
    """No server could be reached: nothing was sent."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Compacted,
    412: PreconditionFailed,
    413: TooLarge,
}


def error_for(status: int, body: dict | None) -> RaftError:
    """The exception for a final (not retried) error answer."""
    body = body or {}
    code = body.get("error") if isinstance(body.get("error"), str) else None
    detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
    if code is None:
        return RaftError(
            status, "unexpected_answer", f"HTTP {status}, not the API's JSON"
        )
    cls = _BY_STATUS.get(status, RaftError)
    if cls is PreconditionFailed:
        current = body.get("current_revision")
        return cls(status, code, detail, current if isinstance(current, int) else 0)
    return cls(status, code, detail)
