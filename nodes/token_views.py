"""The users and tokens API: POST /api/tokens, DELETE /api/tokens/<id>,
GET /api/users, DELETE /api/users/<username> (issue 10). Every change is an
ACCESS entry the leader appends (consensus/access.py); a follower forwards.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus import access
from consensus.errors import AccessRefused, CommandLost, CommandTimeout
from consensus.models import ClusterToken, ClusterUser

from . import errors
from .auth import Caller, ClientUser, HasPermission, caller_of, is_local
from .forwarding import Write, leader_or_forward, relay
from .views import LeaderOrForwardView, serving_runtime


def submit_access(runtime, forwarder, operation, write: Write, caller: Caller):
    """Have the leader append and apply the ACCESS entry of ``operation()``
    (run on the leader, so a token is minted there), which returns the
    entry's command and the fields to answer with; a follower sends
    ``write`` on for ``caller``."""
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

    def apply(runtime):
        op, extra = operation()
        try:
            result = runtime.submit_access(op, caller.name, timeout=timeout_s)
        except CommandTimeout:
            raise errors.TimedOut(
                f"Not committed within {timeout_s:g} s; the change may or may not "
                "take effect."
            ) from None
        except CommandLost:
            raise errors.Unavailable(
                "The change was replaced by another leader's entry: it did not "
                "take effect. Retry.",
                leader=None,
            ) from None
        except AccessRefused as exc:
            if exc.reason == "not_found":
                raise errors.NotFound(f"{exc}; nothing was changed.") from None
            raise errors.Conflict(f"{exc}; nothing was changed.") from None
        return {
            **extra,
            "index": result.index,
            "term": result.term,
            "leader": runtime.node_id,
            "forwarded": False,
        }

    return leader_or_forward(runtime, apply, write, forwarder=forwarder, caller=caller)


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
        bootstrap = caller.user is not None and caller.user.bootstrap

        def operation():
            minted = access.mint_token()
            op = access.create_token_op(
                username, permissions, minted, bootstrap=bootstrap
            )
            extra = {
                "username": username,
                "permissions": list(permissions),
                "token_id": minted.token_id,
                "token": minted.token,
            }
            return op, extra

        body = {"username": username, "permissions": list(permissions)}
        write = Write(
            "POST", "/api/tokens", body, settings.RAFT_COMMAND_TIMEOUT_S, kind="change"
        )
        return relay(
            submit_access(serving_runtime(), self.forwarder, operation, write, caller)
        )


class TokenDetailView(LeaderOrForwardView):
    """DELETE /api/tokens/<token_id>: revoke a token on every server."""

    required_permission = "admin"

    def delete(self, request, token_id):
        op = access.revoke_token_op(token_id)
        write = Write(
            "DELETE",
            f"/api/tokens/{token_id}",
            None,
            settings.RAFT_COMMAND_TIMEOUT_S,
            kind="change",
        )
        answer = submit_access(
            serving_runtime(),
            self.forwarder,
            lambda: (op, {"token_id": token_id}),
            write,
            caller_of(request),
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
    """DELETE /api/users/<username>: remove a user and all its tokens."""

    required_permission = "admin"

    def delete(self, request, username):
        try:
            access.check_username(username)
        except ValueError as exc:
            raise errors.BadRequest(f"{exc}; nothing was changed.") from None
        op = access.delete_user_op(username)
        write = Write(
            "DELETE",
            f"/api/users/{username}",
            None,
            settings.RAFT_COMMAND_TIMEOUT_S,
            kind="change",
        )
        answer = submit_access(
            serving_runtime(),
            self.forwarder,
            lambda: (op, {"username": username}),
            write,
            caller_of(request),
        )
        return relay(answer)
