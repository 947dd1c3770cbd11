"""POST /api/commands served inline on the leader (raftsite/inline_http.py):
the worker's main loop proposes the command (the loop thread itself, on a
client connection it keeps: raftsite/loop_conns.py), the loop thread
answers it once applied, and no pool thread or Django request cycle is
involved.

Inline serving takes only what the view would answer with the leader's
plain 200 or a write error: a plain single command (nodes.serializers.
plain_command), JSON, a caller the view would let write (no token on an open
API, or a valid token with the write permission; no cookie), or a
follower's forwarding of such a write (nobody vouched for on an open API,
or a vouched caller with the permission under the cluster secret), no
content negotiation, on the leader. A follower sends such a command (not
one forwarded to it already) on from a pool thread
(nodes/inline_forwarding.py). Anything else, and a command the runtime
refuses as NotLeader (nothing appended), goes to CommandsView as before.
tests/cluster/test_inline.py holds the two paths to the same answers.
"""

from __future__ import annotations

import functools
import logging
import time

import orjson
from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer

from consensus import access
from consensus.errors import CommandTimeout, NotLeader
from consensus.inline_peers import secret_matches
from consensus.runtime import current_runtime
from consensus.status import CommandResult

from .auth import NOBODY, Caller, ClientUser, vouched_user
from .errors import error_answer, internal_error_body
from .inline_forwarding import forward_command
from .serializers import plain_command
from .write_errors import COMMAND, write_errors

# Headers that make the request the view's: a session, a follower's
# vouching (unless the caller takes it, as serve_command does).
_VIEW_HEADERS = ("cookie", "x-raft-caller", "x-raft-forwarded")
_ACCEPTED = (None, "*/*", "application/json")
_render = JSONRenderer().render
logger = logging.getLogger("nodes.api")


def caller_may(request, permission: str, forwarded: bool = False) -> bool:
    """Whether the request's caller may do what needs ``permission`` as the
    view's authentication and permission classes would let it (nodes/auth.py),
    and wants the JSON answer. False leaves the request to the view, which
    words any refusal (401, 403, 406). With ``forwarded``, a write a
    follower sent on may be served too (_forwarder_may)."""
    headers = request.headers
    if forwarded and headers.get("accept") in _ACCEPTED:
        if any(name in headers for name in _VIEW_HEADERS):
            return _forwarder_may(headers, permission)
    return direct_caller(request, permission) is not None


def direct_caller(request, permission: str) -> Caller | None:
    """The caller of a request sent straight to this node, as the view would
    know it, if the view would let it do what needs ``permission`` and the
    caller wants the JSON answer: NOBODY (no token, on an open API) or a
    token's user. None leaves the request to the view."""
    headers = request.headers
    if headers.get("accept") not in _ACCEPTED:
        return None
    if any(name in headers for name in _VIEW_HEADERS):
        return None
    authorization = headers.get("authorization")
    if authorization is None:
        return None if settings.RAFT_AUTH_REQUIRED else NOBODY
    # DRF's TokenAuthentication: "Token <token>", the keyword in any case.
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    credential = access.authenticate(parts[1])
    if credential is None or permission not in credential.permissions:
        return None
    return Caller(ClientUser(credential.username, credential.permissions))


def _forwarder_may(headers, permission: str) -> bool:
    """caller_may for a write a follower sent on (nodes/forwarding.py): as
    VouchedCallerAuthentication and HasPermission judge it, where that needs
    only the headers. The view answers the rest: a cookie, a token beside
    the vouching, a vouching without the cluster secret to check it by."""
    if (
        headers.get("x-raft-forwarded") != "1"
        or "cookie" in headers
        or "authorization" in headers
    ):
        return False
    vouched = headers.get("x-raft-caller")
    if vouched is None:
        # Nobody vouched for: the open API's caller without a token.
        return not settings.RAFT_AUTH_REQUIRED
    if not settings.RAFT_CLUSTER_SECRET or not secret_matches(
        headers.get("x-raft-secret")
    ):
        # Without a secret, a peer is known by its certificate or address
        # (nodes.auth.is_peer): the view's to judge.
        return False
    try:
        user = vouched_user(vouched)
    except (ValueError, RecursionError):
        return False
    return not settings.RAFT_AUTH_REQUIRED or user.may(permission)


def serve_command(request, exchange) -> bool:
    """Take the request if it is one to serve inline; False leaves it to
    CommandsView."""
    if (
        request.method != "POST"
        or request.query
        or request.headers.get("content-type", "").lower() != "application/json"
    ):
        return False
    runtime = current_runtime()
    status = runtime.status() if runtime is not None else None
    if status is None:
        return False
    if status.role != "leader":
        # A follower's: sent on to the leader from a pool thread, unless the
        # request was forwarded already (the view refuses to again).
        caller = direct_caller(request, "write")
        plain = None if caller is None else _plain(request.body)
        return plain is not None and forward_command(exchange, runtime, plain, caller)
    if not caller_may(request, "write", forwarded=True):
        return False
    plain = _plain(request.body)
    if plain is None:
        return False
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
    exchange.expire_at(time.monotonic() + timeout_s, *_timed_out(timeout_s))
    runtime.propose_command(
        *plain, lambda outcome: _answer(exchange, runtime.node_id, outcome, timeout_s)
    )
    return True


def _plain(body: bytes) -> tuple | None:
    """(command, client_id, seq) of a plain single command (nodes.
    serializers.plain_command), or None: the view's to read."""
    try:
        return plain_command(orjson.loads(body))
    except ValueError:
        return None


def _answer(exchange, leader: str, outcome, timeout_s: float) -> None:
    # On the loop thread: a few microseconds, no waiting.
    if isinstance(outcome, CommandResult):
        body = {
            "index": outcome.index,
            "term": outcome.term,
            "leader": leader,
            "forwarded": False,
        }
        # orjson writes what DRF's renderer would (compact, UTF-8), faster.
        exchange.reply(200, orjson.dumps(body))
    elif isinstance(outcome, NotLeader):
        exchange.decline()  # nothing appended: the view forwards it
    else:
        status_code, body, retry_after = _error(outcome, timeout_s)
        extra = (("Retry-After", retry_after),) if retry_after else ()
        exchange.reply(status_code, body, extra)


@functools.cache
def _timed_out(timeout_s: float) -> tuple[int, bytes]:
    """The view's 504 after ``timeout_s`` (the same for every command)."""
    status_code, body, _ = _error(CommandTimeout("not committed"), timeout_s)
    return status_code, body


def _error(exc: Exception, timeout_s: float) -> tuple[int, bytes, str | None]:
    """What the view answers for the runtime's ``exc``."""
    try:
        with write_errors(COMMAND, timeout_s):
            raise exc
    except APIException as api_error:
        answer = error_answer(api_error)
        return answer.status, _render(answer.body), answer.retry_after
    except Exception:
        # What Django's 500 handler answers (nodes.errors.server_error).
        logger.exception("a command failed on the runtime")
        return 500, _render(internal_error_body()), None
