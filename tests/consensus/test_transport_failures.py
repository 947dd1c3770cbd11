"""A peer's sender thread survives any failure in one of its sends."""

import logging
import queue

import pytest

import consensus.transport
from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    TimeoutNow,
    Unreachable,
)
from consensus.transport import Transport

LEADER = "127.0.0.1:9990"


@pytest.fixture
def transport(delivered):
    transport = Transport(LEADER, delivered.put, timeout=(5.0, 5.0))
    yield transport
    transport.close()


def next_delivered(delivered, timeout=10.0):
    try:
        return delivered.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing delivered within {timeout} s") from None


def append_entries(peer: str, n: int) -> AppendEntries:
    return AppendEntries(
        term=1, source=LEADER, dest=peer, prev_log_index=n, prev_log_term=1
    )


def unroutable(peer: str, n: int):
    # A reply is never sent through the transport: it has no route.
    return AppendEntriesReply(term=1, source=LEADER, dest=peer, success=True)


def unencodable(peer: str, n: int):
    return TimeoutNow(term=100 + n, source=LEADER, dest=peer)


@pytest.fixture
def broken_encoder(monkeypatch):
    encode = consensus.transport.message_to_dict

    def encode_or_fail(message):
        if isinstance(message, TimeoutNow) and message.term >= 100:
            raise TypeError("cannot encode")
        return encode(message)

    monkeypatch.setattr(consensus.transport, "message_to_dict", encode_or_fail)


@pytest.mark.parametrize("make_failing", [unroutable, unencodable])
def test_a_failed_send_is_reported_and_the_next_message_still_goes(
    peer, transport, delivered, broken_encoder, make_failing, caplog
):
    """A message that cannot be routed or encoded is reported Unreachable,
    logged once with its traceback, and the peer's later messages are still
    delivered."""
    caplog.set_level(logging.DEBUG, logger="consensus.transport")
    for n in range(3):
        transport.send(make_failing(peer.address, n))
        unreachable = next_delivered(delivered)
        assert isinstance(unreachable, Unreachable)
        assert unreachable.source == peer.address

    transport.send(append_entries(peer.address, 7))
    reply = next_delivered(delivered)
    assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 7
    assert [e for e, _ in peer.requests()] == ["append_entries"]

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_a_failing_deliver_does_not_end_the_sender(peer, delivered, caplog):
    """Even the deliver callback raising leaves the sender running."""
    calls = []

    def deliver(message):
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("inbox broken")
        delivered.put(message)

    transport = Transport(LEADER, deliver, timeout=(5.0, 5.0))
    try:
        transport.send(append_entries(peer.address, 1))
        # The reply could not be handed over: the core hears Unreachable.
        assert isinstance(next_delivered(delivered), Unreachable)
        transport.send(append_entries(peer.address, 2))
        reply = next_delivered(delivered)
        assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 2
    finally:
        transport.close()


def test_a_reply_over_the_cap_counts_as_unreachable(peer, transport, delivered):
    """A peer's reply is read no further than MAX_PEER_REPLY_BYTES: one
    longer is a failed send (issue 10: replies were read without limit)."""
    from consensus.validation import MAX_PEER_REPLY_BYTES

    answer = peer.reply_to

    def padded(endpoint, data):
        return {**answer(endpoint, data), "padding": "p" * MAX_PEER_REPLY_BYTES}

    peer.reply_to = padded
    transport.send(append_entries(peer.address, 1))
    assert isinstance(next_delivered(delivered), Unreachable)
    peer.reply_to = answer
    transport.send(append_entries(peer.address, 2))
    assert isinstance(next_delivered(delivered), AppendEntriesReply)


def test_a_reply_from_another_server_counts_as_unreachable(peer, transport, delivered):
    answer = peer.reply_to

    def misdirected(endpoint, data):
        return {**answer(endpoint, data), "source": "127.0.0.1:1"}

    peer.reply_to = misdirected
    transport.send(append_entries(peer.address, 1))
    assert isinstance(next_delivered(delivered), Unreachable)
