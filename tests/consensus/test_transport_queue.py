"""PeerSender's queue: bounded, newest AppendEntries only, votes first."""

import queue
import time

import pytest

from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    RequestVote,
    TimeoutNow,
    Unreachable,
)
from consensus.transport import Transport

from .peer_server import PeerServer

LEADER = "127.0.0.1:9990"
# About what the core puts in one AppendEntries at most (max_append_bytes).
BIG = "x" * 64 * 1024


@pytest.fixture
def stopped_peer():
    peer = PeerServer(stopped=True)
    yield peer
    peer.close()


@pytest.fixture
def transport(delivered):
    # A read timeout far beyond the test: the first request stays on the
    # wire for as long as the peer is stopped, as it would for a peer
    # stopped for longer than its sender's backlog takes to build up.
    transport = Transport(LEADER, delivered.put, timeout=(5.0, 30.0))
    yield transport
    transport.close()


def append_entries(peer: str, n: int) -> AppendEntries:
    """The n-th AppendEntries of a stream: prev_log_index names it."""
    return AppendEntries(
        term=1,
        source=LEADER,
        dest=peer,
        prev_log_index=n,
        prev_log_term=1,
        entries=(Entry(index=n + 1, term=1, command=BIG),),
        leader_commit=n,
    )


def wait_for(delivered, predicate, timeout=10.0):
    """The first delivered message matching predicate, within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no matching message delivered in time")
        try:
            message = delivered.get(timeout=remaining)
        except queue.Empty:
            continue
        if predicate(message):
            return message


def vote(peer: str) -> RequestVote:
    return RequestVote(
        term=2, source=LEADER, dest=peer, last_log_index=50, last_log_term=1
    )


@pytest.mark.parametrize("urgent", ["request_vote", "timeout_now"])
def test_a_resumed_peer_gets_the_urgent_message_then_the_newest_append_entries(
    stopped_peer, transport, delivered, urgent
):
    """While a peer accepts but does not answer, the AppendEntries sent to
    it do not pile up: once it answers, it gets at most the one that was
    on the wire, then the RequestVote or TimeoutNow, then only the newest
    AppendEntries."""
    peer = stopped_peer.address
    for n in range(1, 51):
        transport.send(append_entries(peer, n))
    if urgent == "request_vote":
        transport.send(vote(peer))
    else:
        transport.send(TimeoutNow(term=1, source=LEADER, dest=peer))

    stopped_peer.resume()
    wait_for(
        delivered,
        lambda m: isinstance(m, AppendEntriesReply) and m.prev_log_index == 50,
    )

    received = stopped_peer.requests()
    endpoints = [endpoint for endpoint, _ in received]
    # At most the one AppendEntries already on the wire goes before.
    assert urgent in endpoints[:2], endpoints
    assert endpoints.count(urgent) == 1
    assert received[-1][1]["prev_log_index"] == 50
    assert len(received) <= 3, [(e, d.get("prev_log_index")) for e, d in received]


def test_the_queue_holds_at_most_one_message_of_each_kind(stopped_peer, transport):
    """Memory per peer is bounded: however many requests the core makes
    while the peer is stuck, at most one of each kind waits."""
    peer = stopped_peer.address
    for n in range(1, 51):
        transport.send(append_entries(peer, n))
        transport.send(vote(peer))
        sender = transport._senders[peer]
        assert sender.queued() <= 2
    transport.send(TimeoutNow(term=1, source=LEADER, dest=peer))
    assert transport._senders[peer].queued() <= 3


@pytest.mark.parametrize("urgent", ["request_vote", "timeout_now"])
def test_an_urgent_message_does_not_wait_for_an_append_entries_on_the_wire(
    stopped_peer, transport, delivered, urgent
):
    """A RequestVote or TimeoutNow goes out at once on a new connection
    rather than wait for an AppendEntries the peer does not answer."""
    peer = stopped_peer.address
    transport.send(append_entries(peer, 1))
    assert stopped_peer.wait_for_connections(1, timeout=10)
    if urgent == "request_vote":
        transport.send(vote(peer))
    else:
        transport.send(TimeoutNow(term=1, source=LEADER, dest=peer))
    # The transport's read timeout is 30 s: only giving up the stuck
    # AppendEntries lets the urgent message out this soon.
    assert stopped_peer.wait_for_connections(2, timeout=5)
    # The core is told, so it resends the AppendEntries.
    unreachable = wait_for(delivered, lambda m: isinstance(m, Unreachable))
    assert unreachable.source == peer
