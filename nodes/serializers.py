"""Client API request validation and answer shapes (CONTRACT.md, HTTP API)."""

import io

from django.conf import settings
from rest_framework import serializers
from rest_framework.parsers import JSONParser

from consensus.addresses import InvalidAddress, normalise_address
from consensus.models import LogEntry
from consensus.validation import MAX_PEER_INT

from .errors import TooLarge
from .shallow_fields import ShallowFieldsMixin

# LogEntry.seq is a signed 64-bit column, and followers take integers up
# to 2^62 from a leader (consensus/validation.py): a seq above would be
# appended, then refused by every follower.
MAX_SEQ = MAX_PEER_INT
# JSON escapes inflate text at most six-fold ("\u0001" for one byte), so a
# body this size holds any command within RAFT_MAX_COMMAND_BYTES.
REQUEST_BYTES_PER_COMMAND_BYTE = 8
MAX_CLIENT_ID_CHARS = 200


# A batch of commands (POST /api/commands {"commands": [...]}, issue 11): at
# most this many, of this much UTF-8 text together, in a body this large.
MAX_BATCH_COMMANDS = 1000
MAX_BATCH_BYTES = 1 << 20
MAX_BATCH_REQUEST_BYTES = 2 << 20


def max_request_bytes():
    return REQUEST_BYTES_PER_COMMAND_BYTE * settings.RAFT_MAX_COMMAND_BYTES


class BoundedJSONParser(JSONParser):
    """JSONParser that refuses a body over max_request_bytes() with 413
    before reading it all (DRF reads the raw stream, so Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE does not apply)."""

    def limit(self) -> int:
        return max_request_bytes()

    def parse(self, stream, media_type=None, parser_context=None):
        limit = self.limit()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise TooLarge(
                f"The request body is {declared} bytes; the limit is {limit}."
            )
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise TooLarge(f"The request body is over the limit of {limit} bytes.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


class CommandsJSONParser(BoundedJSONParser):
    """POST /api/commands takes a batch too: a larger body."""

    def limit(self) -> int:
        return max(max_request_bytes(), MAX_BATCH_REQUEST_BYTES)


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings (DRF's turns 5 into "5") and text
    that UTF-8 cannot encode (a lone surrogate escaped in the JSON)."""

    default_error_messages = {
        "not_a_string": "Must be a string.",
        "not_unicode": "Must be valid Unicode text.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("not_unicode")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses strings, floats and booleans."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CommandRequestSerializer(ShallowFieldsMixin, serializers.Serializer):
    """POST /api/commands: ``command``, and optionally ``client_id`` with ``seq``."""

    # Kept byte for byte: the state machine logs exactly what was sent.
    command = StrictCharField(trim_whitespace=False)
    client_id = StrictCharField(
        required=False,
        allow_null=True,
        trim_whitespace=False,
        max_length=MAX_CLIENT_ID_CHARS,
    )
    seq = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )

    def validate_command(self, value):
        limit = settings.RAFT_MAX_COMMAND_BYTES
        size = len(value.encode("utf-8"))
        if size > limit:
            # Not a ValidationError: it leaves is_valid() as a 413, not a 400.
            raise TooLarge(
                f"The command is {size} bytes of UTF-8; the limit is {limit}."
            )
        return value

    def validate(self, attrs):
        # The pair names one command of one client; half a pair names none.
        if (attrs.get("client_id") is None) != (attrs.get("seq") is None):
            raise serializers.ValidationError(
                "client_id and seq go together: send both or neither."
            )
        return attrs


def plain_command(data):
    """(command, client_id, seq) of a single command that
    CommandRequestSerializer takes as it is; None for anything else, which
    the serializer then judges and words the errors of.

    The serializer's validation was a tenth of a command's request handling
    on the leader, for a body that is nearly always a plain one.
    tests/nodes/test_plain_command.py holds the two to the same answers.
    """
    if type(data) is not dict:
        return None
    command = data.get("command")
    if not plain_text(command):
        return None
    if len(command.encode("utf-8")) > settings.RAFT_MAX_COMMAND_BYTES:
        return None  # the serializer's 413, with its sizes
    pair = plain_pair(data)
    return None if pair is None else (command, *pair)


def plain_pair(data: dict) -> tuple[str | None, int | None] | None:
    """The body's (client_id, seq) as the serializers take them as they
    are: both absent or null, or a client_id and a seq in range; None for
    anything else."""
    client_id, seq = data.get("client_id"), data.get("seq")
    if client_id is None and seq is None:
        return None, None
    if (
        plain_text(client_id)
        and len(client_id) <= MAX_CLIENT_ID_CHARS
        and type(seq) is int
        and 0 <= seq <= MAX_SEQ
    ):
        return client_id, seq
    return None


def plain_text(value, allow_blank: bool = False) -> bool:
    """What StrictCharField(trim_whitespace=False) keeps as it is: a string,
    not blank (unless allowed), no NUL (DRF's ProhibitNullCharactersValidator),
    UTF-8 encodable (no lone surrogate)."""
    if type(value) is not str or "\x00" in value or not (value or allow_blank):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class CommandBatchSerializer(serializers.Serializer):
    """POST /api/commands {"commands": [...]}: consecutive entries of one
    proposal; with ``client_id``, command i carries ``seq`` + i."""

    commands = serializers.ListField(
        child=StrictCharField(trim_whitespace=False),
        allow_empty=False,
        max_length=MAX_BATCH_COMMANDS,
    )
    client_id = StrictCharField(
        required=False,
        allow_null=True,
        trim_whitespace=False,
        max_length=MAX_CLIENT_ID_CHARS,
    )
    seq = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_SEQ
    )

    def validate_commands(self, value):
        limit = settings.RAFT_MAX_COMMAND_BYTES
        total = 0
        for position, command in enumerate(value):
            size = len(command.encode("utf-8"))
            if size > limit:
                raise TooLarge(
                    f"Command {position} is {size} bytes of UTF-8; "
                    f"the limit is {limit}."
                )
            total += size
        if total > MAX_BATCH_BYTES:
            raise TooLarge(
                f"The batch is {total} bytes of UTF-8; the limit is "
                f"{MAX_BATCH_BYTES}."
            )
        return value

    def validate(self, attrs):
        if (attrs.get("client_id") is None) != (attrs.get("seq") is None):
            raise serializers.ValidationError(
                "client_id and seq go together: send both or neither."
            )
        seq = attrs.get("seq")
        if seq is not None and seq + len(attrs["commands"]) - 1 > MAX_SEQ:
            raise serializers.ValidationError(
                f"seq + the number of commands - 1 must be at most {MAX_SEQ}."
            )
        return attrs


class LogQuerySerializer(serializers.Serializer):
    """GET /api/log query: ``from`` (default 1) and ``limit`` (default 100)."""

    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)

    def get_fields(self):
        fields = super().get_fields()
        # "from" is a Python keyword, so it cannot be declared as an attribute.
        # Bounded: SQLite's integers are 64-bit (a larger one was a 500).
        fields["from"] = serializers.IntegerField(
            min_value=1, max_value=MAX_PEER_INT, default=1
        )
        return fields


class ServerInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    voter = serializers.BooleanField()


class NodeStatusSerializer(serializers.Serializer):
    """GET /api/status, from a consensus.runtime.NodeStatus."""

    id = serializers.CharField()
    role = serializers.CharField()
    term = serializers.IntegerField()
    leader = serializers.CharField(allow_null=True)
    commit_index = serializers.IntegerField()
    last_applied = serializers.IntegerField()
    last_log_index = serializers.IntegerField()
    servers = ServerInfoSerializer(many=True)
    # Beyond the contract: the latest snapshot's last included index (0:
    # none) and the first index the log still holds (Raft §7).
    snapshot_index = serializers.IntegerField()
    first_log_index = serializers.IntegerField()


class ServerViewSerializer(ServerInfoSerializer):
    """One member in GET /api/servers: the contract's ``id`` and ``voter``,
    then ``role`` as the answering node sees it and, from a leader, its
    replication progress (null otherwise)."""

    role = serializers.CharField()
    match_index = serializers.IntegerField(allow_null=True)
    next_index = serializers.IntegerField(allow_null=True)
    last_contact_s = serializers.FloatField(allow_null=True)
    # While the leader streams a snapshot to it: bytes sent, of size.
    snapshot_bytes_sent = serializers.IntegerField(allow_null=True)
    snapshot_size = serializers.IntegerField(allow_null=True)


class ServersSerializer(serializers.Serializer):
    """GET /api/servers: ``leader`` and ``servers`` (the contract), plus the
    answering node's ``id``, ``role`` and ``term``."""

    id = serializers.CharField()
    role = serializers.CharField()
    term = serializers.IntegerField()
    leader = serializers.CharField(allow_null=True)
    servers = ServerViewSerializer(many=True)


class AddressField(StrictCharField):
    """A server address, host:port or :port, in its full form."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return normalise_address(text)
        except InvalidAddress as exc:
            raise serializers.ValidationError(str(exc)) from None


class AddServerSerializer(serializers.Serializer):
    """POST /api/servers: ``address`` of the server to add."""

    address = AddressField()


class TransferLeaderSerializer(serializers.Serializer):
    """POST /api/leader: ``to`` (an address, or null for the most
    up-to-date follower)."""

    to = AddressField(required=False, allow_null=True, default=None)


class LogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = LogEntry
        fields = ["index", "term", "type", "command"]
