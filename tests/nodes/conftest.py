import socket
from dataclasses import dataclass, replace

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

from consensus import access, kv
from consensus.core.messages import Entry, EntryType
from consensus.errors import EntryRefused
from consensus.status import CommandResult, NodeStatus, ServerInfo
from nodes.forwarding import Forwarder
from nodes.views import CommandsView

from .stub import StubServer

NODE_ID = "127.0.0.1:9990"
SERVERS = (
    ServerInfo(id="127.0.0.1:9990", voter=True),
    ServerInfo(id="127.0.0.1:9991", voter=True),
    ServerInfo(id="127.0.0.1:9993", voter=False),
)


@dataclass
class Submitted:
    command: str
    client_id: str | None
    seq: int | None
    timeout: float | None


@dataclass
class SubmittedAccess:
    operation: str  # the ACCESS entry's JSON (consensus.access)
    requested_by: str | None
    timeout: float | None


# The leader's clock for the ACCESS entries a FakeRuntime applies.
ACCESS_TIMESTAMP_MS = 1_764_565_200_000  # 2025-12-01 05:00:00 UTC


class FakeRuntime:
    """Stands in for consensus.runtime.NodeRuntime: ``outcome`` is what
    submit_command returns (a CommandResult) or raises (an exception)."""

    def __init__(self):
        self.node_id = NODE_ID
        self.outcome = CommandResult(index=7, term=2)
        self.submitted: list[Submitted] = []
        self.access_submitted: list[SubmittedAccess] = []
        self.snapshots = None  # a NodeRuntime opens them with its data directory
        self.node_status = NodeStatus(
            id=NODE_ID,
            role="leader",
            term=2,
            leader=NODE_ID,
            commit_index=7,
            last_applied=6,
            last_log_index=9,
            servers=SERVERS,
        )

    def submit_command(self, command, client_id=None, seq=None, timeout=None):
        self.submitted.append(Submitted(command, client_id, seq, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def submit_access(self, operation, requested_by, timeout=None):
        """As a leader would: the entry applies to the tables (``outcome``
        gives its index), or ``outcome`` is raised, applying nothing."""
        self.access_submitted.append(SubmittedAccess(operation, requested_by, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        result = self.outcome
        entry = Entry(
            result.index,
            result.term,
            EntryType.ACCESS,
            operation,
            requested_by,
            timestamp_ms=ACCESS_TIMESTAMP_MS,
        )
        refused = access.apply(entry)
        if refused is not None:
            raise EntryRefused(refused.reason, refused.detail)
        return result

    def submit_kv(self, operation, client_id=None, seq=None, timeout=None):
        """As submit_access: the KV entry applies to the map at ``outcome``'s
        index, or ``outcome`` is raised."""
        self.submitted.append(Submitted(operation, client_id, seq, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        result = self.outcome
        entry = Entry(result.index, result.term, EntryType.KV, operation)
        with connection.cursor() as cursor:
            refused = kv.apply(cursor, entry)
        if refused is not None:
            raise EntryRefused(refused.reason, refused.detail, refused.current_revision)
        return result

    def status(self):
        if isinstance(self.node_status, BaseException):
            raise self.node_status
        return self.node_status


@pytest.fixture
def runtime():
    """A FakeRuntime serving in this process for the test's duration."""
    config = apps.get_app_config("consensus")
    fake = FakeRuntime()
    config.runtime = fake
    yield fake
    config.runtime = None


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def forwarder(monkeypatch):
    """A fresh Forwarder on CommandsView, so no connection outlives a test."""
    fresh = Forwarder(connect_timeout_s=2.0, read_margin_s=0.0)
    monkeypatch.setattr(CommandsView, "forwarder", fresh)
    return fresh


def _as_member(request, address: str) -> None:
    """A stub (or refusing address) stands in for a server of the fake
    node's configuration: a node forwards only to one of those."""
    if "runtime" in request.fixturenames:
        fake = request.getfixturevalue("runtime")
        fake.node_status = replace(
            fake.node_status,
            servers=(*fake.node_status.servers, ServerInfo(id=address, voter=True)),
        )


@pytest.fixture
def stub_server(request):
    """Factory: stub_server(Reply(...), ...) starts a StubServer; all close
    at the end of the test. Each is a member of the runtime's configuration."""
    servers = []

    def start(*replies):
        server = StubServer(*replies)
        servers.append(server)
        _as_member(request, server.address)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def refused_address(request):
    """An address that refuses connections: bound, never listening, and
    held for the test so no other process can take the port. A member of
    the runtime's configuration."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    _as_member(request, address)
    yield address
    sock.close()


@pytest.fixture
def app_forwarder(monkeypatch):
    """A fresh Forwarder as the process's own (the nodes app config's),
    the one every view and the in-process pages use."""
    fresh = Forwarder(connect_timeout_s=2.0, read_margin_s=0.0)
    monkeypatch.setattr(apps.get_app_config("nodes"), "forwarder", fresh)
    return fresh


@pytest.fixture
def pair():
    """A connected (server, client) socket pair: the server's side
    non-blocking, as the worker's main loop holds it."""
    server, client = socket.socketpair()
    server.setblocking(False)
    client.settimeout(5)
    yield server, client
    client.close()
    server.close()
