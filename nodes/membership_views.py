"""The membership API (CONTRACT.md): GET/POST /api/servers, DELETE
/api/servers/<address>, POST /api/leader. A follower forwards writes to the
leader; the leader's runtime carries them out (consensus.membership).
"""

from contextlib import contextmanager

from django.conf import settings
from rest_framework import status
from rest_framework.response import Response

from consensus.addresses import InvalidAddress, normalise_address
from consensus.errors import CommandLost, CommandTimeout
from consensus.membership import (
    CatchupFailed,
    ChangeConflict,
    ChangeInterrupted,
    LeaderNotReady,
    NotAPeer,
    TransferTimeout,
    UnknownServer,
    server_views,
)

from . import errors
from .auth import NOBODY, caller_of
from .client import Answer
from .forwarding import Write, leader_or_forward, relay
from .serializers import (
    AddServerSerializer,
    ServersSerializer,
    TransferLeaderSerializer,
)
from .views import LeaderOrForwardView, serving_runtime, serving_status

# The leader's own waits below are estimates: a little more, so that a
# forwarded answer, not the forwarder's read timeout, wins.
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


def servers_body(node_status) -> dict:
    """GET /api/servers: the configuration as ``node_status``'s node sees it."""
    body = {
        "id": node_status.id,
        "role": node_status.role,
        "term": node_status.term,
        "leader": node_status.leader,
        "servers": server_views(node_status),
    }
    return ServersSerializer(body).data


def add_server(runtime, forwarder, address, *, caller=NOBODY) -> Answer:
    """POST /api/servers on ``runtime``, forwarded to the leader if need be."""

    def add(runtime):
        with membership_errors(runtime):
            result = runtime.membership.add_server(
                address, commit_timeout_s(), caller.name
            )
        return change_body(runtime, address, result)

    # Catch-up, then up to two configuration entries to commit.
    wait_s = settings.RAFT_CATCHUP_TIMEOUT_S + 3 * commit_timeout_s()
    write = Write(
        "POST", "/api/servers", {"address": address}, wait_s + FORWARD_MARGIN_S
    )
    return leader_or_forward(runtime, add, write, forwarder=forwarder, caller=caller)


def remove_server(runtime, forwarder, address, *, caller=NOBODY) -> Answer:
    """DELETE /api/servers/<address> on ``runtime``, forwarded to the leader
    if need be (or to the next one, if this leader removes itself)."""

    def remove(runtime):
        with membership_errors(runtime):
            result = runtime.membership.remove_server(
                address, commit_timeout_s(), caller.name
            )
        return change_body(runtime, address, result)

    wait_s = 2 * commit_timeout_s() + 5.0  # a leadership transfer, a commit
    write = Write("DELETE", f"/api/servers/{address}", None, wait_s + FORWARD_MARGIN_S)
    return leader_or_forward(runtime, remove, write, forwarder=forwarder, caller=caller)


def transfer_leadership(runtime, forwarder, to, *, caller=NOBODY) -> Answer:
    """POST /api/leader on ``runtime``, forwarded to the leader if need be."""

    def transfer(runtime):
        with membership_errors(runtime):
            leader = runtime.membership.transfer_leadership(to)
        return {"leader": leader, "forwarded": False}

    write = Write("POST", "/api/leader", {"to": to}, 5.0 + FORWARD_MARGIN_S)
    return leader_or_forward(
        runtime, transfer, write, forwarder=forwarder, caller=caller
    )


@contextmanager
def membership_errors(runtime):
    """consensus.membership's refusals as the contract's error answers.

    NotLeader and LeadershipMoved pass through: leader_or_forward
    sends the request on.
    """
    try:
        yield
    except UnknownServer as exc:
        raise errors.NotFound(f"{exc}; nothing was changed.") from None
    except ChangeConflict as exc:
        raise errors.Conflict(f"{exc}; nothing was changed.") from None
    except (CatchupFailed, NotAPeer) as exc:
        raise errors.Unprocessable(f"{exc}.") from None
    except LeaderNotReady as exc:
        raise errors.Unavailable(
            f"{exc}. Retry later.", leader=runtime.node_id
        ) from None
    except (ChangeInterrupted, TransferTimeout) as exc:
        raise errors.TimedOut(f"{exc}.") from None
    except CommandTimeout as exc:
        raise errors.TimedOut(f"{exc}.") from None
    except CommandLost:
        raise errors.Unavailable(
            "The configuration entry was replaced by another leader's entry: "
            "it did not commit. Retry.",
        ) from None


class MembershipView(LeaderOrForwardView):
    """The membership writes: each runs on the leader (leader_or_forward)."""

    required_permission = "admin"


class ServersView(MembershipView):
    """GET /api/servers: the configuration; POST adds a server."""

    required_permission = {"GET": "read", "POST": "admin"}

    def get(self, request):
        return Response(servers_body(serving_status()), status=status.HTTP_200_OK)

    def post(self, request):
        serializer = AddServerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        answer = add_server(
            serving_runtime(),
            self.forwarder,
            serializer.validated_data["address"],
            caller=caller_of(request),
        )
        return relay(answer)


class ServerDetailView(MembershipView):
    """DELETE /api/servers/<address>: remove a server."""

    def delete(self, request, address):
        try:
            address = normalise_address(address)
        except InvalidAddress as exc:
            raise errors.BadRequest(f"{exc}; nothing was changed.") from None
        answer = remove_server(
            serving_runtime(), self.forwarder, address, caller=caller_of(request)
        )
        return relay(answer)


class LeaderView(MembershipView):
    """POST /api/leader: hand leadership to ``to`` (or the most up-to-date
    follower); 200 {"leader"} once it has moved."""

    def post(self, request):
        serializer = TransferLeaderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        answer = transfer_leadership(
            serving_runtime(),
            self.forwarder,
            serializer.validated_data.get("to"),
            caller=caller_of(request),
        )
        return relay(answer)
