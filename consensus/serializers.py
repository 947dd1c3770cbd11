"""JSON <-> core message dataclasses for peer RPC.

Hand-written rather than DRF Serializer classes: an AppendEntries may carry
a thousand entries, and field-by-field DRF validation would cost more CPU
than the rest of the request. Malformed input raises ValidationError (400):
every message is checked in full here (integers in range, addresses well
formed, text valid UTF-8, entries that follow on with sane terms, CONFIG
entries that hold a configuration), so what reaches the core is well formed.
"""

from __future__ import annotations

import dataclasses
import json

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import BaseParser

from .core.configuration import Configuration
from .core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
)
from .validation import (
    MAX_PEER_BODY_BYTES,
    MAX_PEER_INT,
    InvalidMessage,
    check_address,
    check_configuration,
    check_configuration_json,
    check_int,
    check_text,
)

# TimeoutNow's last_log_index and last_log_term: -1 means "not said".
_MAY_BE_MINUS_ONE = {"last_log_index", "last_log_term"}
_ENTRY_TYPES = {t.value: t for t in EntryType}
# A client_id in an entry (the client API takes at most 200 characters).
MAX_CLIENT_ID_CHARS = 1024

# Encoded apart from the scalar fields.
_STRUCTURED = ("entries", "configuration")

# Field name -> type accepted from JSON, per message class (entries and
# configuration aside).
_FIELD_TYPES = {
    cls: {
        f.name: {"int": int, "str": str, "bool": bool}.get(f.type)
        for f in dataclasses.fields(cls)
        if f.name not in _STRUCTURED
    }
    for cls in (
        AppendEntries,
        AppendEntriesReply,
        InstallSnapshot,
        InstallSnapshotReply,
        RequestVote,
        RequestVoteReply,
        TimeoutNow,
    )
}


def entry_to_dict(entry: Entry) -> dict:
    return {
        "index": entry.index,
        "term": entry.term,
        "type": entry.type.value,
        "command": entry.command,
        "client_id": entry.client_id,
        "seq": entry.seq,
        "timestamp_ms": entry.timestamp_ms,
    }


class PeerBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = f"a /raft/ body is at most {MAX_PEER_BODY_BYTES} bytes"


class PeerJSONParser(BaseParser):
    """JSON for /raft/ bodies, refused over MAX_PEER_BODY_BYTES (413)
    before they are read whole. Not a JSONParser: DRF reads those through
    HttpRequest.body, capped by DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, and a
    500 beyond it), below what an AppendEntries may legitimately carry.
    Nesting too deep for the json module is a malformed body (400)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > MAX_PEER_BODY_BYTES:
            raise PeerBodyTooLarge()
        raw = stream.read(MAX_PEER_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_PEER_BODY_BYTES:
            raise PeerBodyTooLarge()
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None


def _int(name: str, value) -> int:
    # The common case first: an AppendEntries may carry a thousand entries.
    if type(value) is int and 0 <= value <= MAX_PEER_INT:
        return value
    return check_int(name, value)


def entry_from_dict(data: dict) -> Entry:
    if not isinstance(data, dict):
        raise InvalidMessage("an entry must be a JSON object")
    try:
        index, term = data["index"], data["term"]
        entry_type = _ENTRY_TYPES[data["type"]]
        command = data["command"]
    except (KeyError, TypeError) as exc:
        raise InvalidMessage(f"malformed entry: {exc!r}") from exc
    client_id, seq = data.get("client_id"), data.get("seq")
    if client_id is not None:
        check_text("client_id", client_id)
        if len(client_id) > MAX_CLIENT_ID_CHARS:
            raise InvalidMessage(f"client_id is over {MAX_CLIENT_ID_CHARS} chars")
    entry = Entry(
        _int("entry index", index),
        _int("entry term", term),
        entry_type,
        check_text("entry command", command),
        client_id,
        None if seq is None else _int("seq", seq),
        # Absent from a server of an older version: no time.
        _int("timestamp_ms", data.get("timestamp_ms", 0)),
    )
    if entry_type is EntryType.CONFIG:
        check_configuration_json(command)
    return entry


def configuration_from_dict(data) -> Configuration:
    voters, learners = check_configuration(data)
    return Configuration(frozenset(voters), frozenset(learners))


def check_entries(message: AppendEntries) -> None:
    """Raft §5.3: the entries follow prev_log_index one by one, and terms
    never decrease along a log nor exceed the leader's term."""
    index, term = message.prev_log_index, message.prev_log_term
    if term > message.term:
        raise InvalidMessage("prev_log_term is above the message's term")
    for entry in message.entries:
        if entry.index != index + 1:
            raise InvalidMessage(f"entry {entry.index} does not follow index {index}")
        if not term <= entry.term <= message.term:
            raise InvalidMessage(
                f"entry {entry.index} has term {entry.term}: terms never decrease"
                " along a log nor exceed the leader's"
            )
        index, term = entry.index, entry.term


def message_to_dict(message: Message) -> dict:
    data = {
        f.name: getattr(message, f.name)
        for f in dataclasses.fields(message)
        if f.name not in _STRUCTURED
    }
    if isinstance(message, AppendEntries):
        data["entries"] = [entry_to_dict(e) for e in message.entries]
    if isinstance(message, InstallSnapshot):
        configuration = message.configuration
        data["configuration"] = {
            "voters": sorted(configuration.voters),
            "learners": sorted(configuration.learners),
        }
    return data


def message_from_dict(cls: type[Message], data) -> Message:
    """The ``cls`` message in ``data``, checked in full (ValidationError)."""
    try:
        return _message_from_dict(cls, data)
    except InvalidMessage as exc:
        raise ValidationError(str(exc)) from None


def _message_from_dict(cls: type[Message], data) -> Message:
    if not isinstance(data, dict):
        raise InvalidMessage("expected a JSON object")
    kwargs = {}
    for name, kind in _FIELD_TYPES[cls].items():
        if name not in data:
            continue  # dataclass defaults apply; required ones fail below
        value = data[name]
        if kind is int:
            if cls is TimeoutNow and name in _MAY_BE_MINUS_ONE:
                check_int(name, value, minimum=-1)
            else:
                _int(name, value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise InvalidMessage(f"{name} must be of type bool")
        elif kind is str:
            # source and dest: the servers' full addresses.
            check_address(name, value)
        kwargs[name] = value
    if cls is AppendEntries:
        entries = data.get("entries", [])
        if not isinstance(entries, list):
            raise InvalidMessage("entries must be a list")
        kwargs["entries"] = tuple(entry_from_dict(e) for e in entries)
    if cls is InstallSnapshot and "configuration" in data:
        kwargs["configuration"] = configuration_from_dict(data["configuration"])
    try:
        message = cls(**kwargs)
    except TypeError as exc:
        raise InvalidMessage(f"missing field: {exc}") from exc
    if cls is AppendEntries:
        check_entries(message)
    return message
