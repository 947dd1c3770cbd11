"""Checks on what peers send, shared by the /raft/ views and the snapshot
wire format: integers in range, text valid UTF-8, addresses well formed,
configurations well formed. Standard library only; InvalidMessage (a
ValueError) says what is wrong in one line.
"""

from __future__ import annotations

import http.client
import json

from .addresses import InvalidAddress, normalise_address

# Every integer a peer sends (terms, indexes, seq, timestamps, sizes) lies
# in [0, MAX_PEER_INT]: far above any real value, yet a term's +1 at the
# next election, or the sum of two, still fits SQLite's signed 64 bits.
MAX_PEER_INT = 1 << 62
# A /raft/ body, in bytes. An AppendEntries carries at most max_append_bytes
# (1 MiB) of command text plus one entry of at most 64 KiB, which JSON's
# escapes may inflate six-fold ("\u0001" for one byte), plus about 200
# bytes of fields per entry (at most 1024): under 8 MiB. A snapshot chunk
# is 1 MiB of data, about 1.4 MB of base64.
MAX_PEER_BODY_BYTES = 8 << 20


class InvalidMessage(ValueError):
    """A peer message that is not well formed."""


def check_int(name: str, value, minimum: int = 0) -> int:
    """``value`` if an integer (not a bool) in [minimum, MAX_PEER_INT]."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not minimum <= value <= MAX_PEER_INT
    ):
        raise InvalidMessage(
            f"{name} must be an integer in [{minimum}, {MAX_PEER_INT}]"
        )
    return value


def check_text(name: str, value) -> str:
    """``value`` if a string UTF-8 can encode: no lone surrogate, which
    JSON's escapes allow but SQLite and JSON encoding refuse later."""
    if not isinstance(value, str):
        raise InvalidMessage(f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(f"{name} must be valid Unicode text") from None
    return value


# Peer messages name the same few addresses again and again (source and
# dest of every AppendEntries): those found valid are remembered, up to a
# bound, so each is parsed once rather than twice per message.
_FULL_ADDRESSES: set[str] = set()
_FULL_ADDRESSES_BOUND = 1024


def check_address(name: str, value) -> str:
    """``value`` if a server address in its full form, host:port."""
    if type(value) is str and value in _FULL_ADDRESSES:
        return value
    check_text(name, value)
    try:
        full = normalise_address(value)
    except InvalidAddress as exc:
        raise InvalidMessage(f"{name}: {exc}") from None
    if full != value:
        raise InvalidMessage(f"{name} must be a full address such as {full}")
    if len(_FULL_ADDRESSES) < _FULL_ADDRESSES_BOUND:
        _FULL_ADDRESSES.add(value)
    return value


def check_configuration(data) -> tuple[list[str], list[str]]:
    """The voters and learners of a configuration as JSON decodes it:
    ``{"voters": [address...], "learners": [address...]}``."""
    if not isinstance(data, dict) or "voters" not in data:
        raise InvalidMessage("a configuration is an object with voters")
    voters, learners = data["voters"], data.get("learners", [])
    for ids in (voters, learners):
        if not isinstance(ids, list):
            raise InvalidMessage("voters and learners must be lists of addresses")
        for address in ids:
            check_address("a configuration's member", address)
    return voters, learners


def check_configuration_json(text: str) -> None:
    """``text`` (a CONFIG entry's command, a snapshot's configuration) is
    a configuration's JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidMessage("a configuration must be JSON") from None
    check_configuration(data)


# A peer's reply to one of our requests (a vote, an AppendEntries or a
# snapshot chunk's answer) is a few hundred bytes.
MAX_PEER_REPLY_BYTES = 64 << 10


class ReplyTooLarge(http.client.HTTPException):
    """A peer answered with more than MAX_PEER_REPLY_BYTES: a failed call."""


def read_reply(response: http.client.HTTPResponse) -> bytes:
    """A peer's reply body, read no further than MAX_PEER_REPLY_BYTES."""
    data = response.read(MAX_PEER_REPLY_BYTES + 1)
    if len(data) > MAX_PEER_REPLY_BYTES:
        raise ReplyTooLarge(f"a reply of over {MAX_PEER_REPLY_BYTES} bytes")
    return data
