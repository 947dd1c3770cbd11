"""POST /api/commands sent to a follower, served without Django: the main
loop reads the request (nodes/inline_commands.py), a pool thread sends it
on to the leader and writes the leader's answer back.

Through CommandsView a forwarded command paid the request cycle on top of
the forwarding itself (gunicorn's parser, the middleware, DRF's
negotiation, parsing and rendering): about a millisecond on every command a
client sends to a follower, which at one client doubled its latency. Here
the pool thread runs only what the view runs once it has the request
(nodes.views.submit_command: the leader's answer relayed, or the view's
error answer), so the two paths answer alike; tests/cluster/test_inline.py
holds them to it.

A forwarded command holds a pool thread until the leader answers, as
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


def forward_command(exchange, runtime, plain: tuple, caller: Caller) -> bool:
    """Take a follower's plain command (inline_commands.serve_command) to
    send on to the leader; False leaves it to the view: no pool thread
    free. Without a leader to send it to, the view's words answer (503)."""
    return exchange.in_pool(partial(_forward, exchange, runtime, plain, caller))


def _forward(exchange, runtime, plain: tuple, caller: Caller) -> None:
    # On a pool thread: what CommandsView does with a plain command.
    from .forwarding import answer_in_process, process_forwarder
    from .views import submit_command

    command, client_id, seq = plain
    try:
        answer = answer_in_process(
            lambda: submit_command(
                runtime, process_forwarder(), command, client_id, seq, caller=caller
            )
        )
        extra = (("Retry-After", answer.retry_after),) if answer.retry_after else ()
        exchange.reply(answer.status, _render(answer.body), extra)
    except Exception:
        # What Django's 500 handler answers (nodes.errors.server_error).
        logger.exception("a forwarded command failed")
        exchange.reply(500, _render(internal_error_body()))
