"""The API of a project's own state parts (consensus/parts.py):
POST /api/apps/<name> {"data", "client_id", "seq"} appends an APP entry for
the part (through the leader, like a command), and GET /api/apps/<name>
answers the part's read() at a consistency level, as key-value reads do."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.response import Response

from consensus import parts as state_parts

from . import errors
from .auth import caller_of
from .forwarding import Write, is_commit, leader_or_forward, relay
from .kv_views import CONSISTENCY, on_leader, read_here
from .serializers import MAX_SEQ, StrictCharField, StrictIntegerField
from .views import LeaderOrForwardView, serving_runtime
from .write_errors import entry, write_errors

APP_ENTRY = entry("entry")


class AppWriteSerializer(serializers.Serializer):
    data = serializers.JSONField()
    client_id = StrictCharField(
        required=False, allow_null=True, trim_whitespace=False, max_length=200
    )
    seq = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )

    def validate(self, attrs):
        if (attrs.get("client_id") is None) != (attrs.get("seq") is None):
            raise serializers.ValidationError(
                "client_id and seq go together: send both or neither."
            )
        return attrs


def known_part(name: str) -> state_parts.StatePart:
    part = state_parts.load_parts(settings.RAFT_STATE_PARTS).get(name)
    if part is None:
        raise errors.NotFound(f"No state part {name!r} on this server.")
    return part


class AppView(LeaderOrForwardView):
    required_permission = {"GET": "read", "POST": "write"}

    def post(self, request, name):
        known_part(name)
        serializer = AppWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

        def apply(runtime):
            with write_errors(APP_ENTRY, timeout_s):
                result = runtime.submit_app(
                    name, data["data"], data.get("client_id"), data.get("seq"),
                    timeout=timeout_s,
                )  # fmt: skip
            return {
                "index": result.index,
                "term": result.term,
                "leader": runtime.node_id,
                "forwarded": False,
            }

        write = Write("POST", f"/api/apps/{name}", request.data, timeout_s,
                      kind="entry", accept=is_commit)  # fmt: skip
        answer = leader_or_forward(
            serving_runtime(), apply, write, forwarder=self.forwarder,
            caller=caller_of(request),
        )  # fmt: skip
        return relay(answer)

    def get(self, request, name):
        part = known_part(name)
        params = dict(request.query_params.items())
        consistency = params.pop("consistency", "linearizable")
        if consistency not in CONSISTENCY:
            raise errors.BadRequest(f"consistency is one of {', '.join(CONSISTENCY)}.")
        runtime = serving_runtime()

        def read():
            try:
                result, applied = state_parts.read(lambda c: part.read(c, params))
            except NotImplementedError as exc:
                raise errors.NotFound(str(exc)) from None
            except ValueError as exc:
                raise errors.BadRequest(str(exc)) from None
            return {"result": result, "applied_index": applied}

        if consistency == "leader":
            return relay(on_leader(runtime, self.forwarder, request, read))
        read_here(runtime, consistency)
        return Response(read(), status=status.HTTP_200_OK)
