"""What a client-facing call on the runtime can fail with."""

from .core.api import NotLeader

__all__ = [
    "CommandLost",
    "CommandTimeout",
    "EntryRefused",
    "NotLeader",
    "SessionExpired",
]


class CommandTimeout(Exception):
    """The outcome is unknown: the command may or may not commit."""


class CommandLost(Exception):
    """The command was appended but overwritten by another leader's entry:
    it is known not to have committed (safe to retry)."""


class SessionExpired(Exception):
    """The command's (client_id, seq) belongs to a session that has ended,
    or its seq is below what the client's session still remembers: it was
    not applied, and a retry of the pair never will be (409 conflict)."""


class EntryRefused(Exception):
    """An entry committed but changed nothing (consensus/refused.py):
    ``reason`` is "not_found", "conflict" or "precondition_failed"
    (with the key's ``current_revision``)."""

    def __init__(self, reason: str, detail: str, current_revision: int | None = None):
        super().__init__(detail)
        self.reason = reason
        self.current_revision = current_revision
