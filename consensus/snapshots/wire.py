"""InstallSnapshot chunks as JSON (Raft Figure 13's fields, snake_case),
shared by the sender and the view. No Django: malformed input raises
ValueError.

JSON with the bytes in base64, like every other /raft/ call, rather than a
binary body with the fields in headers: one parser and one secret check
for all peer RPC, and at about 1 MiB a chunk the encoding costs a third
more bytes on the wire and a few milliseconds of CPU (see the report's
loopback figures), small beside the fsync at the end. Django refuses
bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): MAX_CHUNK_BYTES keeps a
chunk's encoding under it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..validation import (
    InvalidMessage,
    check_address,
    check_configuration_json,
    check_int,
)
from .store import SnapshotMeta

CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One InstallSnapshot request: ``data`` at ``offset`` of the file."""

    term: int
    source: str  # the leader (the paper's leaderId)
    dest: str
    last_included_index: int
    last_included_term: int
    configuration: str | None
    configuration_index: int
    size: int  # of the whole file
    checksum: str  # sha256 of the whole file, hex
    offset: int
    data: bytes
    done: bool

    @property
    def leader_id(self) -> str:
        return self.source

    def snapshot(self) -> SnapshotMeta:
        """The snapshot this chunk belongs to (creation time: unknown)."""
        return SnapshotMeta(
            last_included_index=self.last_included_index,
            last_included_term=self.last_included_term,
            configuration=self.configuration,
            configuration_index=self.configuration_index,
            size=self.size,
            checksum=self.checksum,
        )


@dataclass(frozen=True, slots=True)
class SnapshotChunkReply:
    """The follower's current_term, and how many bytes of the snapshot it
    holds: the offset the leader sends next. ``done`` once the whole file
    is durable under its own name."""

    term: int
    source: str
    dest: str
    offset: int
    done: bool = False


_INT_FIELDS = (
    "term",
    "last_included_index",
    "last_included_term",
    "configuration_index",
    "size",
    "offset",
)


def chunk_to_dict(chunk: SnapshotChunk) -> dict:
    return {
        "term": chunk.term,
        "source": chunk.source,
        "dest": chunk.dest,
        "last_included_index": chunk.last_included_index,
        "last_included_term": chunk.last_included_term,
        "configuration": chunk.configuration,
        "configuration_index": chunk.configuration_index,
        "size": chunk.size,
        "checksum": chunk.checksum,
        "offset": chunk.offset,
        "data": base64.b64encode(chunk.data).decode("ascii"),
        "done": chunk.done,
    }


def chunk_from_dict(data) -> SnapshotChunk:
    """The chunk in ``data``, checked in full (consensus/validation.py's
    rules); InvalidMessage, a ValueError, says what is wrong."""
    if not isinstance(data, dict):
        raise InvalidMessage("expected a JSON object")
    for name in _INT_FIELDS:
        check_int(name, data.get(name))
    for name in ("source", "dest"):
        check_address(name, data.get(name))
    for name in ("checksum", "data"):
        if not isinstance(data.get(name), str):
            raise InvalidMessage(f"{name} must be a string")
    if not isinstance(data.get("done"), bool):
        raise InvalidMessage("done must be a boolean")
    configuration = data.get("configuration")
    if configuration is not None:
        if not isinstance(configuration, str):
            raise InvalidMessage("configuration must be a string or null")
        check_configuration_json(configuration)
    if data["last_included_term"] > data["term"]:
        raise InvalidMessage("last_included_term is above the leader's term")
    if data["configuration_index"] > data["last_included_index"]:
        raise InvalidMessage("configuration_index is past last_included_index")
    checksum = data["checksum"]
    if len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
        raise ValueError("checksum must be a sha256 in lower-case hex")
    try:
        payload = base64.b64decode(data["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"data is not base64: {exc}") from exc
    if len(payload) > MAX_CHUNK_BYTES:
        raise ValueError(f"a chunk carries at most {MAX_CHUNK_BYTES} bytes")
    end = data["offset"] + len(payload)
    if end > data["size"]:
        raise ValueError("the chunk ends past the snapshot's size")
    if data["done"] != (end == data["size"]):
        raise ValueError("done must be set on the chunk that ends the file, only")
    return SnapshotChunk(
        term=data["term"],
        source=data["source"],
        dest=data["dest"],
        last_included_index=data["last_included_index"],
        last_included_term=data["last_included_term"],
        configuration=configuration,
        configuration_index=data["configuration_index"],
        size=data["size"],
        checksum=checksum,
        offset=data["offset"],
        data=payload,
        done=data["done"],
    )


def reply_to_dict(reply: SnapshotChunkReply) -> dict:
    return {
        "term": reply.term,
        "source": reply.source,
        "dest": reply.dest,
        "offset": reply.offset,
        "done": reply.done,
    }


def reply_from_dict(data) -> SnapshotChunkReply:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    for name in ("term", "offset"):
        check_int(name, data.get(name))
    if not isinstance(data.get("done"), bool):
        raise InvalidMessage("done must be a boolean")
    return SnapshotChunkReply(
        term=data["term"],
        source=str(data.get("source", "")),
        dest=str(data.get("dest", "")),
        offset=data["offset"],
        done=data["done"],
    )
