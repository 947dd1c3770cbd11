"""The users and tokens API: POST /api/tokens, DELETE /api/tokens/<id>,
GET /api/users, PATCH and DELETE /api/users/<username> (issue 10). Every
change is an ACCESS entry the leader appends (consensus/access.py); a
follower forwards. The functions below are the API's and the admin's path.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus import access
from consensus.models import ClusterToken, ClusterUser

from . import errors
from .auth import Caller, ClientUser, HasPermission, caller_of, is_local
from .client import Answer
from .forwarding import Write, leader_or_forward, relay
from .views import LeaderOrForwardView, serving_runtime
from .write_errors import entry, write_errors

ACCESS_CHANGE = entry("change")


def submit_access(runtime, forwarder, operation, write: Write, caller: Caller):
    """Have the leader append and apply the ACCESS entry of ``operation()``,
    which returns (the operation, the answer's other fields): on the leader,
    so a token is minted there. A follower sends ``write`` on for
    ``caller``."""
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

    def apply(runtime):
        op, extra = operation()
        with write_errors(ACCESS_CHANGE, timeout_s):
            result = runtime.submit_access(op, caller.name, timeout=timeout_s)
        return {
            **extra,
            "index": result.index,
            "term": result.term,
            "leader": runtime.node_id,
            "forwarded": False,
        }

    return leader_or_forward(runtime, apply, write, forwarder=forwarder, caller=caller)


def _change(method: str, path: str, body: dict | None = None) -> Write:
    return Write(method, path, body, settings.RAFT_COMMAND_TIMEOUT_S, kind="change")


def create_token(
    runtime, forwarder, username, permissions, *, caller: Caller
) -> Answer:
    """POST /api/tokens: a new token for ``username`` (made if new), with
    these permissions; the answer holds the token, the only time it is
    shown. A bootstrap caller asks for the cluster's first admin."""
    bootstrap = caller.user is not None and caller.user.bootstrap

    def operation():
        minted = access.mint_token()
        op = access.create_token_op(username, permissions, minted, bootstrap=bootstrap)
        extra = {
            "username": username,
            "permissions": list(permissions),
            "token_id": minted.token_id,
            "token": minted.token,
        }
        return op, extra

    body = {"username": username, "permissions": list(permissions)}
    write = _change("POST", "/api/tokens", body)
    return submit_access(runtime, forwarder, operation, write, caller)


def revoke_token(runtime, forwarder, token_id, *, caller: Caller) -> Answer:
    """DELETE /api/tokens/<token_id>."""
    op = access.revoke_token_op(token_id)
    write = _change("DELETE", f"/api/tokens/{token_id}")
    return submit_access(
        runtime, forwarder, lambda: (op, {"token_id": token_id}), write, caller
    )


def set_permissions(
    runtime, forwarder, username, permissions, *, caller: Caller
) -> Answer:
    """PATCH /api/users/<username> {"permissions"}: the user's tokens keep
    working, with these permissions."""
    op = access.set_permissions_op(username, permissions)
    body = {"permissions": list(permissions)}
    write = _change("PATCH", f"/api/users/{username}", body)
    return submit_access(
        runtime, forwarder, lambda: (op, {"username": username, **body}), write, caller
    )


def delete_user(runtime, forwarder, username, *, caller: Caller) -> Answer:
    """DELETE /api/users/<username>: the user and all its tokens."""
    op = access.delete_user_op(username)
    write = _change("DELETE", f"/api/users/{username}")
    return submit_access(
        runtime, forwarder, lambda: (op, {"username": username}), write, caller
    )


class AdminOrFirstAdmin(HasPermission):
    """POST /api/tokens needs the admin permission, but for the cluster's
    first admin: while no user has admin, a caller on the node's own
    machine needs no token (CONTRACT.md, Security settings). The entry
    itself is refused at apply if an admin appeared meanwhile."""

    def has_permission(self, request, view):
        user = request.user
        if not settings.RAFT_AUTH_REQUIRED or (user is not None and user.bootstrap):
            return True
        if user is None and is_local(request) and not access.has_admin():
            return True
        if user is None:
            raise NotAuthenticated(
                "Creating a token needs an admin token (without one: only from "
                "the node's own machine, while the cluster has no admin user)."
            )
        return super().has_permission(request, view)


class TokensView(LeaderOrForwardView):
    """POST /api/tokens {"username", "permissions"}: a new token for the
    user (made if new; its permissions set to these), shown once."""

    required_permission = "admin"
    permission_classes = [AdminOrFirstAdmin]

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            username = access.check_username(data.get("username"))
            permissions = access.parse_permissions(data.get("permissions", ""))
        except ValueError as exc:
            raise ValidationError(f"{exc}; nothing was changed.") from None
        caller = caller_of(request)
        if settings.RAFT_AUTH_REQUIRED and caller.user is None:
            # AdminOrFirstAdmin let it in: the cluster's first admin.
            who = f"first admin, from {request.META.get('REMOTE_ADDR')}"
            caller = Caller(ClientUser(who, frozenset(), True), caller.forwarded)
        answer = create_token(
            serving_runtime(), self.forwarder, username, permissions, caller=caller
        )
        return relay(answer)


class TokenDetailView(LeaderOrForwardView):
    """DELETE /api/tokens/<token_id>: revoke a token on every server."""

    required_permission = "admin"

    def delete(self, request, token_id):
        answer = revoke_token(
            serving_runtime(), self.forwarder, token_id, caller=caller_of(request)
        )
        return relay(answer)


class UsersView(APIView):
    """GET /api/users: the cluster's users and their tokens (ids only), as
    this server has applied them."""

    required_permission = "admin"

    def get(self, request):
        tokens: dict[str, list] = {}
        for token in ClusterToken.objects.all():
            tokens.setdefault(token.username, []).append(
                {
                    "token_id": token.token_id,
                    "created_index": token.created_index,
                    "created_ms": token.created_ms,
                    "created_by": token.created_by,
                }
            )
        users = [
            {
                "username": user.username,
                "permissions": user.permissions.split(","),
                "created_index": user.created_index,
                "created_by": user.created_by,
                "tokens": tokens.get(user.username, []),
            }
            for user in ClusterUser.objects.all()
        ]
        return Response({"users": users}, status=status.HTTP_200_OK)


class UserDetailView(LeaderOrForwardView):
    """PATCH /api/users/<username> {"permissions"}: set a user's
    permissions; DELETE: remove the user and all its tokens."""

    required_permission = "admin"

    def patch(self, request, username):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            access.check_username(username)
            permissions = access.parse_permissions(data.get("permissions", ""))
        except ValueError as exc:
            raise ValidationError(f"{exc}; nothing was changed.") from None
        answer = set_permissions(
            serving_runtime(),
            self.forwarder,
            username,
            permissions,
            caller=caller_of(request),
        )
        return relay(answer)

    def delete(self, request, username):
        try:
            access.check_username(username)
        except ValueError as exc:
            raise errors.BadRequest(f"{exc}; nothing was changed.") from None
        answer = delete_user(
            serving_runtime(), self.forwarder, username, caller=caller_of(request)
        )
        return relay(answer)
