"""The request limits of the client API as the OpenAPI schema states them
(nodes/schema.py): as tight as the views' validation, so that what a client
(or Schemathesis) builds from the schema is what the node accepts."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from consensus import access, kv
from consensus import parts as state_parts

from .serializers import (
    MAX_BATCH_BYTES,
    MAX_BATCH_COMMANDS,
    MAX_SEQ,
    StrictCharField,
    StrictIntegerField,
)

# consensus/addresses.py's parse_address, as a regular expression: an IPv4
# address, a bracketed IPv6 one (the full and the "::" forms), or a host
# name of up to four labels whose last starts with a letter (all digits and
# dots would be an IPv4 address), or nothing (":port", 127.0.0.1); a port
# of 1 to 65535. Tighter than the parser in places (longer names, other
# IPv6 forms), never looser: what it allows, the node accepts
# (tests/nodes/test_schema_limits.py).
_BYTE = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"({_BYTE}\.){{3}}{_BYTE}"
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = rf"\[(({_HEX}:){{7}}{_HEX}|::({_HEX}(:{_HEX}){{0,6}})?)\]"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL = r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = rf"({_LABEL}\.){{0,3}}{_LAST_LABEL}"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
ADDRESS_PATTERN = rf"^({_IPV4}|{_IPV6}|{_HOST_NAME})?:{_PORT}$"
ADDRESS_MAX_LENGTH = 253 + 1 + 5

_PERMISSION = "(" + "|".join(access.PERMISSIONS) + ")"
PERMISSIONS_PATTERN = rf"^{_PERMISSION}(,{_PERMISSION})*$"
# DRF's CharField refuses a NUL character (ProhibitNullCharactersValidator).
# "+", not "*": drf-spectacular offers a blank string as a second choice of
# a oneOf where blank is allowed, and "" must match only that one.
NO_NUL_PATTERN = "^[^\\u0000]+$"


class AddressFieldLimits(OpenApiSerializerFieldExtension):
    """A server address (nodes.serializers.AddressField): host:port."""

    target_class = "nodes.serializers.AddressField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        # The pattern needs a port: no minLength besides it.
        schema.update(pattern=ADDRESS_PATTERN, maxLength=ADDRESS_MAX_LENGTH)
        schema.pop("minLength", None)
        return schema


class JSONRequestLimits(OpenApiSerializerFieldExtension):
    """Any JSON but null in a request (DRF's JSONField refuses null)."""

    target_class = "rest_framework.fields.JSONField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        if direction == "request" and not self.target.allow_null:
            kinds = ("object", "array", "string", "number", "boolean")
            schema["anyOf"] = [{"type": kind} for kind in kinds]
        return schema


class TextFieldLimits(OpenApiSerializerFieldExtension):
    """Text fields (nodes.serializers.StrictCharField): no NUL character."""

    target_class = "nodes.serializers.StrictCharField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        if schema.get("type") == "string" and "pattern" not in schema:
            schema["pattern"] = NO_NUL_PATTERN
        return schema


def address_parameter(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        "address",
        {"type": "string", "pattern": ADDRESS_PATTERN, "maxLength": ADDRESS_MAX_LENGTH},
        OpenApiParameter.PATH,
        description=description,
    )


KEY = OpenApiParameter(
    "key",
    # Not U+10FFFF either, which no pattern both ECMA-262 and Schemathesis
    # read can say.
    {"type": "string", "minLength": 1, "maxLength": kv.MAX_KEY_BYTES},
    OpenApiParameter.PATH,
    description=f"1 to {kv.MAX_KEY_BYTES} bytes of UTF-8, percent-encoded; "
    "'/' allowed, U+10FFFF not.",
)  # fmt: skip

# The at-most-once pair (client_id, seq) goes together or not at all: as one
# object in the query (form style, exploded: ?client_id=c&seq=1), optional.
SESSION_QUERY = OpenApiParameter(
    "session",
    {
        "type": "object",
        "properties": {
            "client_id": {"type": "string", "minLength": 1, "maxLength": 200,
                          "pattern": NO_NUL_PATTERN},
            "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
        },
        "required": ["client_id", "seq"],
    },
    OpenApiParameter.QUERY,
    style="form",
    explode=True,
    description="client_id (1 to 200 characters) and seq (0 to 2^62), both "
    "or neither: a retried delete with the same pair applies once.",
)  # fmt: skip
PREV_REVISION_QUERY = OpenApiParameter(
    "prev_revision",
    {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
    OpenApiParameter.QUERY,
    description="Delete only if the key's revision is this.",
)


def state_part_parameter() -> OpenApiParameter:
    """The parts this node runs (RAFT_STATE_PARTS), by name."""
    names = sorted(state_parts.load_parts(settings.RAFT_STATE_PARTS))
    schema = {"type": "string", "minLength": 1}
    if names:
        schema["enum"] = names
    return OpenApiParameter(
        "name",
        schema,
        OpenApiParameter.PATH,
        description="A state part's name (RAFT_STATE_PARTS).",
    )


# PUT /api/kv/<key>: the same body, with or without the at-most-once pair.
class PutRequestSerializer(serializers.Serializer):
    value = StrictCharField(
        trim_whitespace=False,
        allow_blank=True,
        max_length=kv.MAX_VALUE_BYTES,
        help_text=f"At most {kv.MAX_VALUE_BYTES} bytes of UTF-8 (else 413).",
    )
    prev_revision = StrictIntegerField(
        required=False, min_value=0, max_value=MAX_SEQ,
        help_text="Write only if the key's revision is this (0: only if absent).",
    )  # fmt: skip


class PutSessionRequestSerializer(PutRequestSerializer):
    client_id = StrictCharField(trim_whitespace=False, max_length=200)
    seq = StrictIntegerField(min_value=0, max_value=MAX_SEQ)


# POST /api/commands: one command or a batch, each with or without the pair.
class CommandBodySerializer(serializers.Serializer):
    command = StrictCharField(
        trim_whitespace=False,
        max_length=settings.RAFT_MAX_COMMAND_BYTES,
        help_text="At most RAFT_MAX_COMMAND_BYTES (64 KiB) of UTF-8 (else 413).",
    )


class CommandSessionBodySerializer(CommandBodySerializer):
    client_id = StrictCharField(trim_whitespace=False, max_length=200)
    seq = StrictIntegerField(min_value=0, max_value=MAX_SEQ)


class BatchBodySerializer(serializers.Serializer):
    commands = serializers.ListField(
        child=StrictCharField(
            trim_whitespace=False, max_length=settings.RAFT_MAX_COMMAND_BYTES
        ),
        min_length=1,
        max_length=MAX_BATCH_COMMANDS,
        help_text=f"1 to {MAX_BATCH_COMMANDS} commands, at most {MAX_BATCH_BYTES} "
        "bytes of UTF-8 together (else 413).",
    )


class BatchSessionBodySerializer(BatchBodySerializer):
    client_id = StrictCharField(trim_whitespace=False, max_length=200)
    seq = StrictIntegerField(
        min_value=0, max_value=MAX_SEQ,
        help_text="The first command's; command i carries seq + i.",
    )  # fmt: skip


# POST /api/apps/<name>: likewise.
class AppRequestSerializer(serializers.Serializer):
    data = serializers.JSONField(help_text="The entry's data, for the part's apply().")


class AppSessionRequestSerializer(AppRequestSerializer):
    client_id = StrictCharField(trim_whitespace=False, max_length=200)
    seq = StrictIntegerField(min_value=0, max_value=MAX_SEQ)


PERMISSIONS_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": PERMISSIONS_PATTERN, "example": "read,write"},
        {
            "type": "array",
            "items": {"type": "string", "enum": list(access.PERMISSIONS)},
            "minItems": 1,
        },
    ],
    "description": '"read,write" or ["read", "write"]: of read, write, admin.',
}


# Components whose alternatives may overlap: anyOf, where drf-spectacular's
# PolymorphicProxySerializer says oneOf.
# (KeyPut, AppWrite and Commands, in the request direction.)
ANY_OF = ("KeyPutRequest", "AppWriteRequest", "CommandsRequest")


def any_of(result, generator, request, public):
    """POSTPROCESSING_HOOKS: ANY_OF's oneOf as anyOf."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in ANY_OF:
        if "oneOf" in schemas.get(name, {}):
            schemas[name]["anyOf"] = schemas[name].pop("oneOf")
    return result


# OpenAPI links: what an answer names, the next operations can use, so a
# client (or Schemathesis' stateful runs) finds keys and users that exist.
LINKS = {
    ("/api/kv/{key}", "put"): {
        "GetKey": ("kv_retrieve", {"key": "$response.body#/key"}),
        "DeleteKey": ("kv_destroy", {"key": "$response.body#/key"}),
    },
    ("/api/tokens", "post"): {
        "RevokeToken": ("tokens_destroy", {"token_id": "$response.body#/token_id"}),
        "SetPermissions": (
            "users_partial_update",
            {"username": "$response.body#/username"},
        ),
        "DeleteUser": ("users_destroy", {"username": "$response.body#/username"}),
    },
}


def add_links(result, generator, request, public):
    """POSTPROCESSING_HOOKS: LINKS on the 200 answers."""
    for (path, method), links in LINKS.items():
        operation = result["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        answer = operation["responses"]["200"]
        answer["links"] = {
            name: {
                "operationId": operation_id,
                "parameters": {f"path.{k}": v for k, v in parameters.items()},
            }
            for name, (operation_id, parameters) in links.items()
        }
    return result
