"""Fixtures the transport tests share: a peer to send to, and what the
transport delivers back to the runtime."""

import queue

import pytest

from .peer_server import PeerServer


@pytest.fixture
def peer():
    peer = PeerServer()
    yield peer
    peer.close()


@pytest.fixture
def delivered():
    return queue.SimpleQueue()
