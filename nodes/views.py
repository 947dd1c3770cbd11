"""The client API (CONTRACT.md, HTTP API): validate, hand off to the node's
runtime, answer with JSON. Errors take their shape in nodes.errors.
"""

from django.conf import settings
from django.db.models import Min
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus.errors import CommandLost, CommandTimeout, NotLeaderError
from consensus.models import LogEntry
from consensus.runtime import current_runtime

from .client import FORWARDED_HEADER
from .errors import NoLeader, TimedOut
from .forwarding import Forwarder
from .serializers import (
    BoundedJSONParser,
    CommandRequestSerializer,
    LogEntrySerializer,
    LogQuerySerializer,
    NodeStatusSerializer,
)


def serving_runtime():
    """The NodeRuntime of this process; 503 when it serves no node."""
    runtime = current_runtime()
    if runtime is None:
        raise NoLeader("This process is not serving a Raft node.")
    return runtime


def serving_status():
    """This node's NodeStatus; 503 while it has none yet."""
    node_status = serving_runtime().status()
    if node_status is None:
        raise NoLeader("This node is still starting.")
    return node_status


class CommandsView(APIView):
    """POST /api/commands: commit a command; a follower forwards it."""

    parser_classes = [BoundedJSONParser]
    # One per process, so forwarded commands reuse connections to the leader.
    forwarder = Forwarder()

    def post(self, request):
        serializer = CommandRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        runtime = serving_runtime()
        command = serializer.validated_data["command"]
        client_id = serializer.validated_data.get("client_id")
        seq = serializer.validated_data.get("seq")
        timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
        try:
            result = runtime.submit_command(command, client_id, seq, timeout=timeout_s)
        except NotLeaderError as exc:
            leader = exc.leader_id
            already_forwarded = request.headers.get(FORWARDED_HEADER) == "1"
            if leader is None:
                raise NoLeader(
                    f"No leader is known to {runtime.node_id}; "
                    "nothing was appended. Retry later."
                ) from None
            if already_forwarded or leader == runtime.node_id:
                # Forward at most once: a stale leader hint must not bounce
                # the command from follower to follower.
                raise NoLeader(
                    f"{runtime.node_id} is not the leader (it believes {leader} is) "
                    "and does not forward a forwarded command; nothing was "
                    "appended. Retry later.",
                    leader=leader,
                ) from None
            return self._forward(leader, command, client_id, seq, timeout_s)
        except CommandTimeout:
            raise TimedOut(
                f"Not committed within {timeout_s:g} s; "
                "the command may or may not commit."
            ) from None
        except CommandLost:
            raise NoLeader(
                "The command was appended but replaced by another leader's entry: "
                "it did not commit and nothing of it remains. Retry.",
                leader=None,
            ) from None
        body = {
            "index": result.index,
            "term": result.term,
            "leader": runtime.node_id,
            "forwarded": False,
        }
        return Response(body, status=status.HTTP_200_OK)

    def _forward(self, leader, command, client_id, seq, timeout_s):
        body = {"command": command}
        if client_id is not None:
            body.update(client_id=client_id, seq=seq)
        answer = self.forwarder.forward_command(leader, body, timeout_s)
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
        return Response(
            {**answer.body, "forwarded": True}, status=answer.status, headers=headers
        )


class StatusView(APIView):
    """GET /api/status: this node's view of the cluster."""

    def get(self, request):
        node_status = serving_status()
        return Response(
            NodeStatusSerializer(node_status).data, status=status.HTTP_200_OK
        )


class LogView(APIView):
    """GET /api/log?from=N&limit=M: a page of committed entries."""

    def get(self, request):
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, limit = query.validated_data["from"], query.validated_data["limit"]
        node_status = serving_status()
        # Raft §5.3-5.4: only committed entries are final; a later leader may
        # overwrite the others, so clients never see them.
        entries = LogEntry.objects.filter(
            index__gte=start, index__lte=node_status.commit_index
        ).order_by("index")[:limit]
        first_index = LogEntry.objects.aggregate(first=Min("index"))["first"]
        if first_index is None:
            # An empty log starts after the last index (0 on a new node).
            first_index = node_status.last_log_index + 1
        body = {
            "first_index": first_index,
            "commit_index": node_status.commit_index,
            "entries": LogEntrySerializer(entries, many=True).data,
        }
        return Response(body, status=status.HTTP_200_OK)
