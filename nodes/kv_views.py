"""The key-value API (CONTRACT.md "Key-value store"): PUT, GET and DELETE
/api/kv/<key>, GET /api/kv (a page of keys), GET /api/watch (a long poll).

Writes go to the leader as KV entries (consensus/kv.py), forwarded like
commands. Reads take a consistency level: ``linearizable`` (ReadIndex,
dissertation §6.4: this server waits until it has applied through an index
the leader confirmed after the read arrived), ``leader`` (the leader's
applied state, without that round) or ``stale`` (this server's).
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus import kv
from consensus.errors import (
    CommandTimeout,
    NotLeader,
)
from consensus.peer_reads import ReadIndexUnavailable

from . import errors, kv_stats
from .auth import NOBODY, caller_of
from .client import Answer
from .forwarding import Write, leader_or_forward, relay
from .serializers import (
    MAX_SEQ,
    StrictCharField,
    StrictIntegerField,
    plain_pair,
    plain_text,
)
from .shallow_fields import ShallowFieldsMixin
from .views import LeaderOrForwardView, serving_runtime, serving_status
from .write_errors import entry, write_errors

KV_WRITE = entry("write")

CONSISTENCY = ("linearizable", "leader", "stale")
MAX_LIST_LIMIT = 1000
MAX_WATCH_S = 60
WATCH_EVENTS = 1000


class PutSerializer(ShallowFieldsMixin, serializers.Serializer):
    value = StrictCharField(trim_whitespace=False, allow_blank=True)
    prev_revision = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )
    client_id = StrictCharField(
        required=False, allow_null=True, trim_whitespace=False, max_length=200
    )
    seq = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )

    def validate_value(self, value):
        try:
            return kv.check_value(value)
        except ValueError as exc:
            raise errors.TooLarge(f"{exc}; nothing was changed.") from None

    def validate(self, attrs):
        if (attrs.get("client_id") is None) != (attrs.get("seq") is None):
            raise serializers.ValidationError(
                "client_id and seq go together: send both or neither."
            )
        return attrs


def plain_put(data) -> dict | None:
    """A PUT body that PutSerializer takes as it is, as its validated data;
    None for anything else, which the serializer judges and words the
    errors of (nodes.serializers.plain_command, for key-value writes;
    tests/nodes/test_plain_command.py holds the two to the same answers)."""
    if type(data) is not dict:
        return None
    value, prev = data.get("value"), data.get("prev_revision")
    if not plain_text(value, allow_blank=True):
        return None
    try:
        kv.check_value(value)
    except ValueError:
        return None  # the serializer's 413, with its sizes
    if prev is not None and not (type(prev) is int and 0 <= prev <= MAX_SEQ):
        return None
    pair = plain_pair(data)
    if pair is None:
        return None
    client_id, seq = pair
    return {"value": value, "prev_revision": prev, "client_id": client_id, "seq": seq}


class DeleteSerializer(ShallowFieldsMixin, serializers.Serializer):
    prev_revision = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )
    client_id = serializers.CharField(
        required=False, allow_null=True, trim_whitespace=False, max_length=200
    )
    seq = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )

    validate = PutSerializer.validate


class ReadSerializer(ShallowFieldsMixin, serializers.Serializer):
    consistency = serializers.ChoiceField(CONSISTENCY, default="linearizable")


class ListSerializer(ReadSerializer):
    prefix = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    after = serializers.CharField(required=False, trim_whitespace=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIST_LIMIT, default=100)


class WatchSerializer(ShallowFieldsMixin, serializers.Serializer):
    prefix = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    after = serializers.IntegerField(required=False, min_value=0, max_value=MAX_SEQ)
    timeout = serializers.FloatField(
        required=False, default=30, min_value=0, max_value=MAX_WATCH_S
    )


def key_path(key: str) -> str:
    return f"/api/kv/{quote(key, safe='')}"


def checked_key(key: str) -> str:
    try:
        return kv.check_key(key)
    except kv.InvalidKey as exc:
        raise errors.BadRequest(f"{exc}; nothing was changed.") from None


# --- writes ---------------------------------------------------------------------


def submit_kv(runtime, forwarder, key, operation, write: Write, caller=NOBODY, *,
              client_id=None, seq=None, value=None) -> Answer:  # fmt: skip
    """Have the leader append and apply a KV entry; 200 with the key's new
    revision, 412 / 404 when it changed nothing."""
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S

    def apply(runtime):
        with write_errors(KV_WRITE, timeout_s):
            result = runtime.submit_kv(operation, client_id, seq, timeout=timeout_s)
        body = {"key": key, "revision": result.index}
        if value is not None:
            body["value"] = value
        return {**body, "leader": runtime.node_id, "forwarded": False}

    return leader_or_forward(runtime, apply, write, forwarder=forwarder, caller=caller)


def _is_kv_write(answer: Answer) -> bool:
    return answer.status == 200 and isinstance((answer.body or {}).get("revision"), int)


# --- reads ----------------------------------------------------------------------


def read_here(runtime, consistency: str) -> None:
    """Wait until this server may answer a read of ``consistency`` from its
    applied state (a ``leader`` read is answered by the leader itself)."""
    if consistency != "linearizable":
        return
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
    deadline = time.monotonic() + timeout_s
    try:
        index = runtime.linearizable_index(timeout_s)
    except NotLeader:
        raise errors.Unavailable(
            "No leader is known to confirm a linearizable read. Retry later, "
            "or read with consistency=stale."
        ) from None
    except ReadIndexUnavailable as exc:
        raise errors.Unavailable(f"No read index: {exc}. Retry later.") from None
    except CommandTimeout as exc:
        raise errors.TimedOut(f"Leadership not confirmed: {exc}.") from None
    if not runtime.wait_applied(index, max(0.0, deadline - time.monotonic())):
        raise errors.TimedOut(
            f"This server did not apply through index {index} within {timeout_s:g} s."
        )


def on_leader(runtime, forwarder, request, read) -> Answer:
    """A ``leader`` read: ``read()`` on the leader, forwarded there."""

    def action(runtime):
        node_status = runtime.status()
        if node_status is None or node_status.role != "leader":
            raise NotLeader(node_status.leader if node_status else None)
        return read()

    # request.path is decoded: a key's "?", "#" or "%" must be encoded again.
    path = quote(request.path) + "?" + urlencode(request.query_params)
    write = Write("GET", path, None, settings.RAFT_COMMAND_TIMEOUT_S, kind="read",
                  undone="nothing was read")  # fmt: skip
    answer = leader_or_forward(
        runtime, action, write, forwarder=forwarder, caller=caller_of(request)
    )
    return answer


class KeyView(LeaderOrForwardView):
    """PUT, GET and DELETE /api/kv/<key>."""

    required_permission = {"GET": "read", "PUT": "write", "DELETE": "write"}

    def put(self, request, key):
        key = checked_key(key)
        data = plain_put(request.data)
        if data is None:
            serializer = PutSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        operation = kv.put_op(key, data["value"], data.get("prev_revision"))
        write = Write("PUT", key_path(key), request.data, settings.RAFT_COMMAND_TIMEOUT_S,
                      kind="write", undone="nothing was changed",
                      accept=_is_kv_write)  # fmt: skip
        answer = submit_kv(
            serving_runtime(), self.forwarder, key, operation, write,
            caller_of(request), client_id=data.get("client_id"), seq=data.get("seq"),
            value=data["value"],
        )  # fmt: skip
        return relay(answer)

    def delete(self, request, key):
        key = checked_key(key)
        serializer = DeleteSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        operation = kv.delete_op(key, data.get("prev_revision"))
        query = urlencode({k: v for k, v in data.items() if v is not None})
        path = key_path(key) + (f"?{query}" if query else "")
        write = Write("DELETE", path, None, settings.RAFT_COMMAND_TIMEOUT_S,
                      kind="delete", accept=_is_kv_write)  # fmt: skip
        answer = submit_kv(
            serving_runtime(), self.forwarder, key, operation, write,
            caller_of(request), client_id=data.get("client_id"), seq=data.get("seq"),
        )  # fmt: skip
        return relay(answer)

    def get(self, request, key):
        key = checked_key(key)
        query = ReadSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        consistency = query.validated_data["consistency"]
        runtime = serving_runtime()

        def read():
            kv_stats.served(consistency)
            item, applied = kv.get(key)
            if item is None:
                raise errors.NotFound(f"No key {key!r}.", applied_index=applied)
            return {
                "key": key,
                "value": item.value,
                "revision": item.revision,
                "applied_index": applied,
            }

        if consistency == "leader":
            return relay(on_leader(runtime, self.forwarder, request, read))
        read_here(runtime, consistency)
        return Response(read(), status=status.HTTP_200_OK)


class KeysView(LeaderOrForwardView):
    """GET /api/kv?prefix=&after=&limit=&consistency=: keys in byte order."""

    required_permission = "read"

    def get(self, request):
        query = ListSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        runtime = serving_runtime()

        def read():
            kv_stats.served(data["consistency"])
            found, more, applied = kv.items(
                data["prefix"], data.get("after"), data["limit"]
            )
            return {
                "items": [
                    {"key": i.key, "value": i.value, "revision": i.revision}
                    for i in found
                ],
                "more": more,
                "applied_index": applied,
            }

        if data["consistency"] == "leader":
            return relay(on_leader(runtime, self.forwarder, request, read))
        read_here(runtime, data["consistency"])
        return Response(read(), status=status.HTTP_200_OK)


class WatchView(APIView):
    """GET /api/watch?prefix=&after=&timeout=: the changes under the prefix
    after a revision, as soon as there is one (this server's applied
    history, in revision order)."""

    required_permission = "read"

    def get(self, request):
        query = WatchSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        runtime = serving_runtime()
        window = settings.RAFT_KV_HISTORY_ENTRIES
        deadline = time.monotonic() + data["timeout"]
        after = data.get("after")
        if after is None:
            # From now on: what this server has applied so far is seen (503
            # while it is starting and has no status yet, not a 500).
            after = serving_status(runtime).last_applied
        while True:
            found, covered, floor = kv.events(
                data["prefix"], after, WATCH_EVENTS, window
            )
            if after < floor:
                raise errors.Compacted(
                    f"Changes after revision {after} are no longer kept (the "
                    f"history starts after {floor}); list the keys again and "
                    "watch from the applied_index of that answer."
                )
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                break
            runtime.wait_for_apply(max(covered, after), remaining)
        events = [
            {"type": e.type, "key": e.key, "value": e.value, "revision": e.revision}
            for e in found
        ]
        body = {"events": events, "revision": max(covered, after)}
        return Response(body, status=status.HTTP_200_OK)
