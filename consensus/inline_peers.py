"""POST /raft/append_entries and /raft/read_index served inline
(raftsite/inline_worker.py): the worker's main loop checks and decodes the
message, the loop thread writes the reply on the socket once the entries
are durable (Raft Figure 2) or the read index confirmed, and no pool thread
wakes for it. On a follower that was two thread hand-offs of every
command's path, the second one behind the loop thread's apply.

Only what the views would answer 200 is served inline: plain HTTP
(TLS checks the peer's certificate in the view), the cluster secret right
if one is set, a well-formed message addressed to this server. Anything
else goes to the view, which answers it as before.
"""

from __future__ import annotations

import hmac
import time

import orjson
from django.conf import settings
from rest_framework.renderers import JSONRenderer

from .core.messages import AppendEntries
from .runtime import current_runtime
from .serializers import message_from_dict, message_to_dict

_render = JSONRenderer().render
# What PeerView.post waits for the loop (NodeRuntime.handle_rpc).
RPC_TIMEOUT_S = 2.0


def append_entries_handler(timeout_body: bytes):
    """The inline handler; ``timeout_body`` is the view's 503 body when the
    loop does not answer within RPC_TIMEOUT_S."""

    def serve(request, exchange) -> bool:
        runtime, data = _peer_call(request)
        if runtime is None:
            return False
        try:
            message = message_from_dict(AppendEntries, data)
        except Exception:  # malformed: the view's 400, in its words
            return False
        if message.dest != runtime.node_id:
            return False
        exchange.expire_at(time.monotonic() + RPC_TIMEOUT_S, 503, timeout_body)
        runtime.step_later(message, lambda reply: _answer(exchange, reply))
        return True

    return serve


def read_index_handler(timeout_body: bytes):
    """The inline handler of POST /raft/read_index: a follower's read index,
    answered once the loop has confirmed this leadership (ReadIndexView);
    ``timeout_body`` is the view's 503 body when that takes longer than
    RAFT_COMMAND_TIMEOUT_S."""

    def serve(request, exchange) -> bool:
        runtime, data = _peer_call(request)
        if runtime is None:
            return False
        if not isinstance(data, dict) or data.get("dest") != runtime.node_id:
            return False
        deadline = time.monotonic() + settings.RAFT_COMMAND_TIMEOUT_S
        exchange.expire_at(deadline, 503, timeout_body)

        def confirmed(outcome):
            if isinstance(outcome, Exception):
                exchange.decline()  # NotLeader: the view's 503, in its words
            else:
                exchange.reply(200, _render({"index": outcome}))

        runtime.read_index_later(confirmed)
        return True

    return serve


def _peer_call(request):
    """(runtime, decoded JSON body) of a peer call to serve inline, or
    (None, None) for one the view must answer."""
    if not _plain_peer_call(request):
        return None, None
    runtime = current_runtime()
    if runtime is None:
        return None, None
    try:
        # orjson refuses what json takes only loosely (NaN, lone
        # surrogates); the view answers those as before.
        return runtime, orjson.loads(request.body)
    except (ValueError, RecursionError):  # the view's answer
        return None, None


def _plain_peer_call(request) -> bool:
    headers = request.headers
    return (
        request.method == "POST"
        and not request.query
        and not settings.RAFT_TLS_CA
        and headers.get("content-type", "").lower() == "application/json"
        and headers.get("accept") in (None, "*/*", "application/json")
        and secret_matches(headers.get("x-raft-secret"))
    )


def secret_matches(given: str | None) -> bool:
    """Whether ``given`` (an X-Raft-Secret header) is the cluster secret;
    True when there is none."""
    secret = settings.RAFT_CLUSTER_SECRET
    if not secret:
        return True
    return hmac.compare_digest((given or "").encode(), secret.encode())


def _answer(exchange, reply) -> None:
    body = message_to_dict(reply) if reply is not None else {}
    exchange.reply(200, orjson.dumps(body))
