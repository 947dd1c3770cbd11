"""The membership API (CONTRACT.md): GET/POST /api/servers, DELETE
/api/servers/<address>, POST /api/leader. A follower forwards writes to the
leader; the leader's runtime carries them out (consensus.membership).
"""

from django.conf import settings
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus.addresses import InvalidAddress, normalise_address
from consensus.errors import CommandLost, CommandTimeout, NotLeaderError
from consensus.membership import (
    CatchupFailed,
    ChangeConflict,
    ChangeInterrupted,
    LeaderNotReady,
    LeadershipMoved,
    TransferTimeout,
    UnknownServer,
    server_views,
)

from . import errors
from .client import FORWARDED_HEADER
from .forwarding import Forwarder
from .serializers import (
    AddServerSerializer,
    BoundedJSONParser,
    ServersSerializer,
    TransferLeaderSerializer,
)
from .views import serving_runtime, serving_status

# Beyond the leader's own waits: a forwarded answer, not a read timeout, wins.
FORWARD_MARGIN_S = 2.0


def commit_timeout_s():
    return settings.RAFT_COMMAND_TIMEOUT_S


def change_body(runtime, address, result):
    servers = result.configuration
    return {
        "address": address,
        "index": result.index,
        "term": result.term,
        "changed": result.changed,
        "leader": runtime.node_id,
        "forwarded": False,
        "servers": [
            {"id": member, "voter": member in servers.voters}
            for member in sorted(servers.members)
        ],
    }


class MembershipView(APIView):
    parser_classes = [BoundedJSONParser]
    # One per process, so forwarded requests reuse connections to the leader.
    forwarder = Forwarder()

    def perform(self, request, action, method, path, body, wait_s):
        """Run ``action(runtime)`` for its body; forward to the leader when
        this node is not it. ``wait_s`` bounds the leader's own work."""
        runtime = serving_runtime()
        forwarded = request.headers.get(FORWARDED_HEADER) == "1"
        try:
            return Response(action(runtime), status=status.HTTP_200_OK)
        except NotLeaderError as exc:
            leader = exc.leader_id
            if leader is None:
                raise errors.NoLeader(
                    f"No leader is known to {runtime.node_id}; nothing was "
                    "changed. Retry later."
                ) from None
            if forwarded or leader == runtime.node_id:
                raise errors.NoLeader(
                    f"{runtime.node_id} is not the leader (it believes {leader} "
                    "is) and does not forward a forwarded request; nothing was "
                    "changed. Retry later.",
                    leader=leader,
                ) from None
            target = leader
        except LeadershipMoved as exc:
            # This leader removes itself: it handed leadership over first
            # (dissertation §3.10); the new leader carries out the removal.
            target = exc.leader_id
        except UnknownServer as exc:
            raise errors.NotFound(f"{exc}; nothing was changed.") from None
        except ChangeConflict as exc:
            raise errors.Conflict(f"{exc}; nothing was changed.") from None
        except CatchupFailed as exc:
            raise errors.CatchupFailed(f"{exc}.") from None
        except LeaderNotReady as exc:
            raise errors.NoLeader(
                f"{exc}. Retry later.", leader=runtime.node_id
            ) from None
        except (ChangeInterrupted, TransferTimeout) as exc:
            raise errors.TimedOut(f"{exc}.") from None
        except CommandTimeout as exc:
            raise errors.TimedOut(f"{exc}.") from None
        except CommandLost:
            raise errors.NoLeader(
                "The configuration entry was replaced by another leader's entry: "
                "it did not commit. Retry.",
            ) from None
        answer = self.forwarder.forward(
            target, method, path, body, wait_s + FORWARD_MARGIN_S
        )
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
        return Response(
            {**answer.body, "forwarded": True}, status=answer.status, headers=headers
        )


class ServersView(MembershipView):
    """GET /api/servers: the configuration; POST adds a server."""

    def get(self, request):
        node_status = serving_status()
        body = {
            "id": node_status.id,
            "role": node_status.role,
            "term": node_status.term,
            "leader": node_status.leader,
            "servers": server_views(node_status),
        }
        return Response(ServersSerializer(body).data, status=status.HTTP_200_OK)

    def post(self, request):
        serializer = AddServerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        address = serializer.validated_data["address"]

        def add(runtime):
            result = runtime.membership.add_server(address, commit_timeout_s())
            return change_body(runtime, address, result)

        # Catch-up, then up to two configuration entries to commit.
        wait_s = settings.RAFT_CATCHUP_TIMEOUT_S + 3 * commit_timeout_s()
        return self.perform(
            request, add, "POST", "/api/servers", {"address": address}, wait_s
        )


class ServerDetailView(MembershipView):
    """DELETE /api/servers/<address>: remove a server."""

    def delete(self, request, address):
        try:
            address = normalise_address(address)
        except InvalidAddress as exc:
            raise errors.BadRequest(f"{exc}; nothing was changed.") from None

        def remove(runtime):
            result = runtime.membership.remove_server(address, commit_timeout_s())
            return change_body(runtime, address, result)

        wait_s = 2 * commit_timeout_s() + 5.0  # a leadership transfer, a commit
        return self.perform(
            request, remove, "DELETE", f"/api/servers/{address}", None, wait_s
        )


class LeaderView(MembershipView):
    """POST /api/leader: hand leadership to ``to`` (or the most up-to-date
    follower); 200 {"leader"} once it has moved."""

    def post(self, request):
        serializer = TransferLeaderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        to = serializer.validated_data.get("to")

        def transfer(runtime):
            leader = runtime.membership.transfer_leadership(to)
            return {"leader": leader, "forwarded": False}

        return self.perform(request, transfer, "POST", "/api/leader", {"to": to}, 5.0)
