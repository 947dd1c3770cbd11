"""JSON <-> core message dataclasses for peer RPC.

Hand-written rather than DRF Serializer classes: an AppendEntries may carry
a thousand entries, and field-by-field DRF validation would cost more CPU
than the rest of the request. Malformed input raises ValidationError (400).
"""

from __future__ import annotations

import dataclasses

from rest_framework.exceptions import ValidationError

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


def entry_from_dict(data: dict) -> Entry:
    try:
        entry = Entry(
            index=data["index"],
            term=data["term"],
            type=EntryType(data["type"]),
            command=data["command"],
            client_id=data.get("client_id"),
            seq=data.get("seq"),
            # Absent from a server of an older version: no time.
            timestamp_ms=data.get("timestamp_ms", 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"malformed entry: {exc}") from exc
    if not all(
        isinstance(n, int) and not isinstance(n, bool)
        for n in (entry.index, entry.term, entry.timestamp_ms)
    ):
        raise ValidationError("entry index, term and timestamp_ms must be integers")
    if not isinstance(entry.command, str):
        raise ValidationError("entry command must be a string")
    return entry


def configuration_from_dict(data) -> Configuration:
    try:
        voters, learners = data["voters"], data.get("learners", [])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValidationError(f"malformed configuration: {exc}") from exc
    for ids in (voters, learners):
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValidationError("voters and learners must be lists of addresses")
    return Configuration(frozenset(voters), frozenset(learners))


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
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object")
    kwargs = {}
    for name, kind in _FIELD_TYPES[cls].items():
        if name not in data:
            continue  # dataclass defaults apply; required ones fail below
        value = data[name]
        # bool is a subclass of int: keep them apart for term and indexes.
        if kind is not None and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            if not (value is None and name == "voted_for"):
                raise ValidationError(f"{name} must be of type {kind.__name__}")
        kwargs[name] = value
    if cls is AppendEntries:
        entries = data.get("entries", [])
        if not isinstance(entries, list):
            raise ValidationError("entries must be a list")
        kwargs["entries"] = tuple(entry_from_dict(e) for e in entries)
    if cls is InstallSnapshot and "configuration" in data:
        kwargs["configuration"] = configuration_from_dict(data["configuration"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValidationError(f"missing field: {exc}") from exc
