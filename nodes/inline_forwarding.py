"""A client write sent to a follower, served without Django (POST
/api/commands, PUT /api/kv/<key>): the main loop reads the request
(nodes/inline_commands.py, nodes/inline_kv_writes.py), a pool thread sends
it on to the leader and writes the leader's answer back.

Through CommandsView a forwarded command paid the request cycle on top of
the forwarding itself (gunicorn's parser, the middleware, DRF's
negotiation, parsing and rendering): about a millisecond on every command a
client sends to a follower, which at one client doubled its latency. Here
the pool thread runs only what the view runs once it has the request
(nodes.views.submit_command, nodes.kv_views.put_kv: the leader's answer
relayed, or the view's error answer), so the two paths answer alike;
tests/cluster/test_inline.py holds them to it.

A forwarded write holds a pool thread until the leader answers, as
through the view, and counts against RAFT_MAX_CLIENT_REQUESTS as the view's
requests do: when no slot is free the view answers (503 overloaded).
"""

from __future__ import annotations

import logging
from functools import partial

from rest_framework.renderers import JSONRenderer

from .auth import Caller
from .errors import internal_error_body

_render = JSONRenderer().render
logger = logging.getLogger("nodes.api")


def forward_command(exchange, runtime, status, plain: tuple, caller: Caller) -> bool:
    """Take a follower's plain command (inline_commands.serve_command) to
    send on to the leader its status names; False leaves it to the view:
    no leader known, or no pool thread free."""
    command, client_id, seq = plain

    def call():
        from .forwarding import process_forwarder
        from .views import submit_command

        return submit_command(
            runtime, process_forwarder(), command, client_id, seq, caller=caller
        )

    return send_on(exchange, runtime, status, call)


def send_on(exchange, runtime, status, call) -> bool:
    """Have a pool thread answer the request with what ``call()`` (a view's
    write, which forwards it) returns or raises; False leaves the request to
    the view: no leader known to send it to, or no pool thread free."""
    leader = status.leader
    if leader is None or leader == runtime.node_id:
        return False  # the view's 503 no_leader
    return exchange.in_pool(partial(_answer, exchange, call))


def _answer(exchange, call) -> None:
    # On a pool thread: the answer the view would relay.
    from .forwarding import answer_in_process

    try:
        answer = answer_in_process(call)
        extra = (("Retry-After", answer.retry_after),) if answer.retry_after else ()
        exchange.reply(answer.status, _render(answer.body), extra)
    except Exception:
        # What Django's 500 handler answers (nodes.errors.server_error).
        logger.exception("a forwarded write failed")
        exchange.reply(500, _render(internal_error_body()))
