"""The CLI on TLS: --ca (or RAFT_CA) makes it speak HTTPS and verify the
server's certificate; a certificate it cannot verify, or a server that does
not speak TLS, fails at once in one line, nothing sent."""

import time

import pytest

from consensus.tls import TLSFiles
from nodes.client import RaftClient
from tests.tls_helpers import https_server, make_pki

from .stub import Reply
from .test_management_commands import STATUS, fails, run


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def node(pki):
    files = TLSFiles(*map(str, pki["node"]), str(pki["ca"]))
    with https_server(files, STATUS) as address:
        yield address


def test_with_ca_the_cli_speaks_https(pki, node):
    output = run("status", "-S", node, "--ca", str(pki["ca"]))
    assert "leader:         127.0.0.1:9991" in output
    with RaftClient(node, ca=str(pki["ca"])) as client:
        assert client._url("/api/status") == f"https://{node}/api/status"


def test_raft_ca_stands_for_ca(pki, node, monkeypatch):
    monkeypatch.setenv("RAFT_CA", str(pki["ca"]))
    assert "role:           follower" in run("status", "-S", node)


def test_a_server_the_ca_did_not_sign_is_refused_before_anything_is_sent(pki, node):
    started = time.monotonic()
    line = fails("clientcommand", "-m", "x", "-S", node, "--ca", str(pki["other_ca"]))
    assert line.startswith(f"cannot reach {node}: TLS: certificate verify failed")
    # Not retried until the timeout as an outcome unknown.
    assert time.monotonic() - started < 5


def test_with_ca_a_plain_http_server_is_refused(pki, stub_server):
    plain = stub_server(Reply(200, STATUS))
    line = fails("status", "-S", plain.address, "--ca", str(pki["ca"]))
    assert line.startswith(f"cannot reach {plain.address}: TLS: ")
    assert plain.received == []
