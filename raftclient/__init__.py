"""A Python client for a raftsite cluster's key-value store and commands
(CONTRACT.md, "HTTP API" and "Key-value store"). It imports no Django, so
any program with ``requests`` can use it::

    from raftclient import Client, PreconditionFailed, NotFound

    with Client([":9990", ":9991", ":9992"], token=None, ca=None) as client:
        item = client.put("config/mode", "fast")      # Item(key, value, revision)
        client.get("config/mode").value                # 'fast' (linearizable)
        client.get("config/mode", consistency="stale")  # this server's state
        try:
            client.cas("config/mode", "safe", prev_revision=item.revision)
        except PreconditionFailed as exc:
            print("changed meanwhile, now at", exc.current_revision)
        client.cas("lock", "me", prev_revision=0)       # only if absent
        for item in client.list(prefix="config/"):      # all pages
            print(item.key, item.value, item.revision)
        revision = client.delete("config/mode")         # NotFound if absent
        for event in client.watch(prefix="config/", after=revision):
            print(event.type, event.key, event.value, event.revision)
        client.submit("I like beer.")                   # Commit(index, term, ...)

A call goes to the server that last answered (any server serves: a
follower forwards writes). An unreachable server is skipped for the next;
a 503 no_leader is retried after its Retry-After, a 504 or a lost
connection after a pause, each on the next server, until ``timeout``
seconds have passed. Writes carry this client's ``client_id`` and the next
``seq``, the same on every retry, so the cluster applies each once.

Errors are RaftError(status, code, detail) subclasses: BadRequest,
Unauthorized, Forbidden, NotFound, Conflict, Compacted, PreconditionFailed
(``current_revision``), TooLarge; Unavailable (no leader until the
timeout), OutcomeUnknown (a write may or may not have taken effect) and
Unreachable (no server could be reached; nothing was sent).
"""

from nodes.client import Commit

from .client import CONSISTENCY, Client, Event, Item
from .errors import (
    BadRequest,
    Compacted,
    Conflict,
    Forbidden,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    RaftError,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unreachable,
)

__all__ = [
    "CONSISTENCY",
    "BadRequest",
    "Client",
    "Commit",
    "Compacted",
    "Conflict",
    "Event",
    "Forbidden",
    "Item",
    "NotFound",
    "OutcomeUnknown",
    "PreconditionFailed",
    "RaftError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
]
