"""The answers of the client API as the OpenAPI schema describes them
(nodes/schema.py): the error shape and each operation's 200 body. Only the
schema reads these; the views answer with plain dicts."""

from __future__ import annotations

from drf_spectacular.utils import (
    extend_schema_field,
)
from rest_framework import serializers

from consensus import access

from .schema_limits import PERMISSIONS_SCHEMA
from .serializers import (
    LogEntrySerializer,
)

# Every code an error answer may carry (nodes/errors.py, nodes/health.py,
# raftsite/client_limit.py), as CONTRACT.md lists them and a few more.
ERROR_CODES = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "conflict",
    "compacted",
    "precondition_failed",
    "too_large",
    "catchup_failed",
    "throttled",
    "no_leader",
    "overloaded",
    "not_ready",
    "timeout",
    "internal_error",
]

# --- answers --------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every 4xx and 5xx answer; some add fields (``leader``,
    ``current_revision``, ``applied_index``)."""

    error = serializers.ChoiceField(ERROR_CODES, help_text="What went wrong.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")


class NoLeaderErrorSerializer(ErrorSerializer):
    leader = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="The leader this server knows of (host:port), or null.",
    )


class PreconditionFailedErrorSerializer(ErrorSerializer):
    current_revision = serializers.IntegerField(
        help_text="The key's revision now (0: the key is absent)."
    )


class KeyNotFoundErrorSerializer(ErrorSerializer):
    applied_index = serializers.IntegerField(
        required=False, help_text="The index this server had applied when it read."
    )


class CommandAnswerSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The entry's log index.")
    term = serializers.IntegerField(help_text="The entry's term.")
    leader = serializers.CharField(help_text="The leader that committed it.")
    forwarded = serializers.BooleanField(
        help_text="Whether the answering server forwarded it to the leader."
    )


class IndexTermSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    term = serializers.IntegerField()


class BatchAnswerSerializer(serializers.Serializer):
    entries = IndexTermSerializer(many=True, help_text="One per command, in order.")
    leader = serializers.CharField()
    forwarded = serializers.BooleanField()


class LogPageSerializer(serializers.Serializer):
    first_index = serializers.IntegerField(
        help_text="The lowest index still held (1 until the log is compacted)."
    )
    commit_index = serializers.IntegerField()
    entries = LogEntrySerializer(many=True)


class MemberSerializer(serializers.Serializer):
    id = serializers.CharField()
    voter = serializers.BooleanField()


class ChangeAnswerSerializer(serializers.Serializer):
    address = serializers.CharField()
    index = serializers.IntegerField()
    term = serializers.IntegerField()
    changed = serializers.BooleanField()
    leader = serializers.CharField()
    forwarded = serializers.BooleanField()
    servers = MemberSerializer(many=True, help_text="The new configuration.")


class LeaderAnswerSerializer(serializers.Serializer):
    leader = serializers.CharField(help_text="The leader now.")
    forwarded = serializers.BooleanField()


class AccessAnswerSerializer(serializers.Serializer):
    """The common part of a users-and-tokens change's answer."""

    index = serializers.IntegerField()
    term = serializers.IntegerField()
    leader = serializers.CharField()
    forwarded = serializers.BooleanField()


class UsernameField(serializers.RegexField):
    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text", "1 to 150 letters, digits and _ . @ + - (ASCII)."
        )
        super().__init__(f"^{access.USERNAME.pattern}$", **kwargs)


@extend_schema_field(PERMISSIONS_SCHEMA)
class PermissionsField(serializers.JSONField):
    pass


class TokenRequestSerializer(serializers.Serializer):
    username = UsernameField()
    permissions = PermissionsField()


class PermissionsRequestSerializer(serializers.Serializer):
    permissions = PermissionsField()


class TokenAnswerSerializer(AccessAnswerSerializer):
    username = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    token_id = serializers.CharField()
    token = serializers.CharField(help_text="Shown this once only.")


class TokenRevokedSerializer(AccessAnswerSerializer):
    token_id = serializers.CharField()


class PermissionsAnswerSerializer(AccessAnswerSerializer):
    username = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class UserDeletedSerializer(AccessAnswerSerializer):
    username = serializers.CharField()


class TokenInfoSerializer(serializers.Serializer):
    token_id = serializers.CharField()
    created_index = serializers.IntegerField()
    created_ms = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)


class UserInfoSerializer(serializers.Serializer):
    username = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    created_index = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)
    tokens = TokenInfoSerializer(many=True)


class UsersSerializer(serializers.Serializer):
    users = UserInfoSerializer(many=True)


class KeyValueWrittenSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    revision = serializers.IntegerField(help_text="The index of the write.")
    leader = serializers.CharField()
    forwarded = serializers.BooleanField()


class KeyDeletedSerializer(serializers.Serializer):
    key = serializers.CharField()
    revision = serializers.IntegerField(help_text="The index of the delete.")
    leader = serializers.CharField()
    forwarded = serializers.BooleanField()


class KeyValueSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    revision = serializers.IntegerField()
    applied_index = serializers.IntegerField()


class ItemSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    revision = serializers.IntegerField()


class KeysPageSerializer(serializers.Serializer):
    items = ItemSerializer(many=True)
    more = serializers.BooleanField()
    applied_index = serializers.IntegerField()


class EventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(["put", "delete"])
    key = serializers.CharField()
    value = serializers.CharField(allow_null=True, allow_blank=True)
    revision = serializers.IntegerField()


class EventsSerializer(serializers.Serializer):
    events = EventSerializer(many=True)
    revision = serializers.IntegerField(help_text="Pass as the next ``after``.")


class AppReadSerializer(serializers.Serializer):
    result = serializers.JSONField(help_text="The part's read() answer.")
    applied_index = serializers.IntegerField()


class LiveSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["live"])
    id = serializers.CharField()
    serving = serializers.BooleanField()


class ReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(["ready"])
    id = serializers.CharField()
    role = serializers.CharField()
    leader = serializers.CharField(allow_null=True)
    applied_index = serializers.IntegerField()
    commit_index = serializers.IntegerField()
