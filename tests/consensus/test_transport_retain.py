"""Transport.retain: a removed peer's sender thread is closed."""

import queue
import socket

import pytest

from consensus.core.messages import TimeoutNow, Unreachable
from consensus.transport import Transport


@pytest.fixture
def refused_address():
    """Bound, never listening: connections to it are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_retain_closes_the_senders_of_removed_peers(refused_address):
    delivered = queue.SimpleQueue()
    transport = Transport("127.0.0.1:9990", delivered.put)
    transport.send(TimeoutNow(term=1, source="127.0.0.1:9990", dest=refused_address))
    # The send fails (nothing listens), which the sender reports.
    assert isinstance(delivered.get(timeout=5), Unreachable)
    sender = transport._senders[refused_address]

    transport.retain({"127.0.0.1:9991"})
    assert transport._senders == {}
    sender._thread.join(timeout=5)
    assert not sender._thread.is_alive()
    transport.close()
