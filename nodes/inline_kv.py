"""GET /api/kv/<key> served inline (raftsite/inline_worker.py): the reads
KeyView answers from this server's own applied state, without a pool thread.

- ``stale`` on any server, and ``leader`` on the leader: read at once, on
  the worker's main loop (one SQLite read transaction).
- ``linearizable``: ReadIndex as the view does it (dissertation §6.4): the
  leader's loop thread confirms the read index with the batch's one round
  of heartbeats (a follower asks the leader for it, consensus/peer_reads.py),
  and once this server has applied through it the main loop reads.

Everything else goes to KeyView as before: a follower's ``leader`` read
(forwarded), a caller the view would refuse (nodes.inline_commands.caller_may),
any query but ``consistency``, a key the view
would refuse, and a read whose index could not be had (the view tries
again and words the error). tests/cluster/test_inline.py holds the two paths to
the same answers.
"""

from __future__ import annotations

import functools
import logging
import time
from urllib.parse import unquote_to_bytes

from django.conf import settings
from rest_framework.renderers import JSONRenderer

from consensus import kv
from consensus.runtime import current_runtime

from . import errors, kv_stats
from .inline_commands import caller_may

PREFIX = "/api/kv/"
_render = JSONRenderer().render
logger = logging.getLogger("nodes.api")
_CONSISTENCY = {
    "": "linearizable",
    "consistency=linearizable": "linearizable",
    "consistency=leader": "leader",
    "consistency=stale": "stale",
}


def serve_read(request, exchange) -> bool:
    consistency = _CONSISTENCY.get(request.query)
    if request.method != "GET" or consistency is None or request.body:
        return False
    if not caller_may(request, "read"):
        return False
    key = _key(request.path)
    if key is None:
        return False
    runtime = current_runtime()
    status = runtime.status() if runtime is not None else None
    if status is None:
        return False
    leading = status.role == "leader"
    if consistency == "stale" or (consistency == "leader" and leading):
        _read(exchange, key, consistency)
        return True
    if consistency != "linearizable":
        return False  # a follower forwards a leader read
    members = {server.id for server in status.servers}
    leader = status.leader
    if not leading and (
        leader is None or leader == runtime.node_id or leader not in members
    ):
        return False  # no leader to ask: the view's 503
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
    exchange.expire_at(time.monotonic() + timeout_s, *_not_confirmed(timeout_s))

    def confirmed(outcome):
        # Nothing is read yet when the index fails: the view tries again and
        # words the error.
        if isinstance(outcome, Exception):
            exchange.decline()
        else:
            runtime.when_applied(
                outcome, lambda: exchange.later(_read_later, exchange, key, consistency)
            )

    if leading:
        # Dissertation §6.4: the loop confirms leadership with one round of
        # heartbeats for every read waiting, then this node's own apply.
        runtime.read_index_later(confirmed)
    else:
        # A follower asks the leader for the index (consensus/peer_reads.py,
        # batched), then waits for its own apply.
        runtime.peer_reads.read_index_later(leader, confirmed)
    return True


@functools.cache
def _not_confirmed(timeout_s: float) -> tuple[int, bytes]:
    """The view's 504 when the read index takes longer than ``timeout_s``
    (CommandTimeout's words in NodeRuntime.read_index)."""
    answer = errors.error_answer(
        errors.TimedOut(
            "Leadership not confirmed: leadership not confirmed within"
            f" {timeout_s:g} s."
        )
    )
    return answer.status, _render(answer.body)


def _key(path: str) -> str | None:
    """The key as Django gives it to KeyView (percent-decoded UTF-8), if
    the view would take it."""
    try:
        key = unquote_to_bytes(path[len(PREFIX) :]).decode("utf-8")
        return kv.check_key(key)
    except (UnicodeDecodeError, kv.InvalidKey):
        return None


def _read_later(exchange, key: str, consistency: str) -> None:
    # On the main loop, from its method queue: whatever fails here must not
    # reach the worker's loop. Nothing was read: the view reads again.
    try:
        _read(exchange, key, consistency)
    except Exception:
        logger.exception("an inline read failed")
        exchange.decline()


def _read(exchange, key: str, consistency: str) -> None:
    kv_stats.served(consistency)
    item, applied = kv.get(key)
    if item is None:
        missing = errors.error_answer(
            errors.NotFound(f"No key {key!r}.", applied_index=applied)
        )
        exchange.reply(missing.status, _render(missing.body))
        return
    body = {
        "key": key,
        "value": item.value,
        "revision": item.revision,
        "applied_index": applied,
    }
    exchange.reply(200, _render(body))
