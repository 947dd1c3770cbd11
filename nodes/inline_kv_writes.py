"""PUT /api/kv/<key> served inline (raftsite/inline_worker.py), as POST
/api/commands is (nodes/inline_commands.py): on the leader the main loop
proposes the write and the loop thread answers it once applied; a follower
sends it on to the leader from a pool thread (nodes/inline_forwarding.py).

Taken only when KeyView would answer with the leader's 200 or a write error:
a key the view takes, no query, JSON, a body its plain checks take
(nodes.kv_views.plain_put), a caller the view would let write (as for
commands). Everything else, and a write the runtime refuses as NotLeader
(nothing appended), goes to KeyView as before; so does every DELETE.
tests/cluster/test_inline.py holds the two paths to the same answers.
"""

from __future__ import annotations

import time

import orjson
from django.conf import settings
from rest_framework.renderers import JSONRenderer

from consensus import kv
from consensus.errors import NotLeader
from consensus.runtime import current_runtime
from consensus.status import CommandResult

from .inline_commands import caller_may, direct_caller, timed_out, write_error
from .inline_forwarding import send_on
from .inline_kv import inline_key
from .kv_views import KV_WRITE, plain_put, put_kv

# DRF's renderer, as KeyView's: it escapes U+2028 and U+2029, which a value
# may hold and orjson would write as they are.
_render = JSONRenderer().render


def serve_put(request, exchange) -> bool:
    """Take the request if it is one to serve inline; False leaves it to
    KeyView."""
    if (
        request.method != "PUT"
        or request.query
        or request.headers.get("content-type", "").lower() != "application/json"
    ):
        return False
    key = inline_key(request.path)
    runtime = current_runtime()
    status = runtime.status() if runtime is not None else None
    if key is None or status is None:
        return False
    leading = status.role == "leader"
    if leading:
        allowed = caller_may(request, "write", forwarded=True)
    else:
        caller = direct_caller(request, "write")
        allowed = caller is not None
    if not allowed:
        return False
    try:
        body = orjson.loads(request.body)
    except ValueError:
        return False
    data = plain_put(body)
    if data is None:
        return False
    if not leading:
        # As KeyView.put sends it on: the body as the client sent it.
        return send_on(
            exchange,
            runtime,
            status,
            lambda: put_kv(runtime, _forwarder(), key, body, data, caller),
        )
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
    exchange.expire_at(time.monotonic() + timeout_s, *timed_out(timeout_s, KV_WRITE))
    operation = kv.put_op(key, data["value"], data["prev_revision"])
    runtime.propose_kv(
        operation,
        data["client_id"],
        data["seq"],
        lambda outcome: _answer(
            exchange, runtime.node_id, key, data["value"], outcome, timeout_s
        ),
    )
    return True


def _forwarder():
    from .forwarding import process_forwarder

    return process_forwarder()


def _answer(exchange, leader: str, key: str, value: str, outcome, timeout_s) -> None:
    # On the loop thread, as nodes.kv_views.submit_kv words it.
    if isinstance(outcome, CommandResult):
        body = {
            "key": key,
            "revision": outcome.index,
            "value": value,
            "leader": leader,
            "forwarded": False,
        }
        exchange.reply(200, _render(body))
    elif isinstance(outcome, NotLeader):
        exchange.decline()  # nothing appended: the view forwards it
    else:
        status_code, body, retry_after = write_error(outcome, timeout_s, KV_WRITE)
        extra = (("Retry-After", retry_after),) if retry_after else ()
        exchange.reply(status_code, body, extra)
