"""The client API (CONTRACT.md, HTTP API): validate, hand off to the node's
runtime, answer with JSON. Errors take their shape in nodes.errors.
"""

from django.conf import settings
from django.db.models import Min
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus.models import LogEntry
from consensus.runtime import current_runtime

from .auth import NOBODY, caller_of
from .client import Answer
from .errors import Unavailable
from .forwarding import (
    Write,
    is_commit,
    leader_or_forward,
    process_forwarder,
    relay,
)
from .serializers import (
    BoundedJSONParser,
    CommandBatchSerializer,
    CommandRequestSerializer,
    CommandsJSONParser,
    LogEntrySerializer,
    LogQuerySerializer,
    NodeStatusSerializer,
    plain_command,
)
from .write_errors import BATCH, COMMAND, write_errors

# GET /api/log: the most command text (UTF-8 bytes) one page carries.
LOG_PAGE_BYTES = 1 << 20


def serving_runtime():
    """The NodeRuntime of this process; 503 when it serves no node."""
    runtime = current_runtime()
    if runtime is None:
        raise Unavailable("This process is not serving a Raft node.")
    return runtime


def serving_status(runtime=None):
    """This node's NodeStatus (``runtime``'s, by default the serving one);
    503 while it has none yet."""
    node_status = (runtime or serving_runtime()).status()
    if node_status is None:
        raise Unavailable("This node is still starting.")
    return node_status


def submit_command(
    runtime, forwarder, command, client_id=None, seq=None, *, caller=NOBODY
) -> Answer:
    """POST /api/commands on ``runtime``: the leader's 200 once the command
    is committed and applied, forwarded there if this node is not it."""
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

    def commit(runtime):
        with write_errors(COMMAND, timeout_s):
            result = runtime.submit_command(command, client_id, seq, timeout=timeout_s)
        return {
            "index": result.index,
            "term": result.term,
            "leader": runtime.node_id,
            "forwarded": False,
        }

    body = {"command": command}
    if client_id is not None:
        body.update(client_id=client_id, seq=seq)
    write = Write(
        "POST",
        "/api/commands",
        body,
        timeout_s,
        kind="command",
        undone="nothing was appended",
        accept=is_commit,
    )
    return leader_or_forward(runtime, commit, write, forwarder=forwarder, caller=caller)


def submit_batch(
    runtime, forwarder, commands, client_id=None, seq=None, *, caller=NOBODY
) -> Answer:
    """POST /api/commands {"commands": [...]} on ``runtime``: the leader's
    200 once every command is committed and applied, with each one's index
    and term in order; forwarded there if this node is not it."""
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

    def commit(runtime):
        with write_errors(BATCH, timeout_s):
            results = runtime.submit_commands(
                commands, client_id, seq, timeout=timeout_s
            )
        return {
            "entries": [{"index": r.index, "term": r.term} for r in results],
            "leader": runtime.node_id,
            "forwarded": False,
        }

    body = {"commands": commands}
    if client_id is not None:
        body.update(client_id=client_id, seq=seq)
    write = Write(
        "POST",
        "/api/commands",
        body,
        timeout_s,
        kind="batch",
        undone="nothing was appended",
        accept=is_batch_commit,
    )
    return leader_or_forward(runtime, commit, write, forwarder=forwarder, caller=caller)


def is_batch_commit(answer: Answer) -> bool:
    entries = (answer.body or {}).get("entries")
    return answer.status == 200 and isinstance(entries, list)


class LeaderOrForwardView(APIView):
    """A view of client writes: they run on the leader (leader_or_forward)."""

    parser_classes = [BoundedJSONParser]
    required_permission = "write"

    @property
    def forwarder(self):
        return process_forwarder()


class CommandsView(LeaderOrForwardView):
    """POST /api/commands: commit a command, or a batch of them
    (``commands``); a follower forwards it."""

    parser_classes = [CommandsJSONParser]

    def post(self, request):
        data = request.data
        if isinstance(data, dict) and "commands" in data:
            return self._batch(request)
        plain = plain_command(data)
        if plain is None:
            serializer = CommandRequestSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            valid = serializer.validated_data
            plain = valid["command"], valid.get("client_id"), valid.get("seq")
        command, client_id, seq = plain
        answer = submit_command(
            serving_runtime(),
            self.forwarder,
            command,
            client_id,
            seq,
            caller=caller_of(request),
        )
        return relay(answer)

    def _batch(self, request):
        serializer = CommandBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        answer = submit_batch(
            serving_runtime(),
            self.forwarder,
            data["commands"],
            data.get("client_id"),
            data.get("seq"),
            caller=caller_of(request),
        )
        return relay(answer)


class StatusView(APIView):
    """GET /api/status: this node's view of the cluster. Open without a
    token, as monitoring needs it; a token given is not even looked at."""

    authentication_classes = []
    required_permission = None

    def get(self, request):
        node_status = serving_status()
        return Response(
            NodeStatusSerializer(node_status).data, status=status.HTTP_200_OK
        )


class LogView(APIView):
    """GET /api/log?from=N&limit=M: a page of committed entries."""

    required_permission = "read"

    def get(self, request):
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, limit = query.validated_data["from"], query.validated_data["limit"]
        node_status = serving_status()
        # Raft §5.3-5.4: only committed entries are final; a later leader may
        # overwrite the others, so clients never see them.
        rows = LogEntry.objects.filter(
            index__gte=start, index__lte=node_status.commit_index
        ).order_by("index")[:limit]
        # A page holds at most LOG_PAGE_BYTES of command text (but always
        # one entry), read a few rows at a time: 1000 commands of 64 KiB
        # would be 64 MiB. The client asks again from the next index.
        entries, size = [], 0
        for entry in rows.iterator(chunk_size=64):
            size += len(entry.command.encode("utf-8"))
            if entries and size > LOG_PAGE_BYTES:
                break
            entries.append(entry)
        # The lowest index stored, not the core's first (after a restart
        # the core holds only the entries after its snapshot, while the
        # trailing window stays on disk until the next compaction).
        first_index = LogEntry.objects.aggregate(first=Min("index"))["first"]
        if first_index is None:
            first_index = node_status.last_log_index + 1
        body = {
            "first_index": first_index,
            "commit_index": node_status.commit_index,
            "entries": LogEntrySerializer(entries, many=True).data,
        }
        return Response(body, status=status.HTTP_200_OK)
