"""TLS between nodes: /raft/ needs a client certificate from the CA, the
peer connection verifies the server's certificate and address, and runnode
refuses TLS files it cannot use, in one line."""

import contextlib
import socket
import ssl
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from consensus.peer_connection import close_quietly, open_connection
from consensus.serializers import message_to_dict
from consensus.tls import TLSConfigError, TLSFiles, names_host, verified_peer
from tests.tls_helpers import https_server, make_pki

from .test_peer_views import VOTE, runtime  # noqa: F401 - a fixture


class FakeSocket:
    """What gunicorn puts in the environ: getpeercert() of the connection."""

    def __init__(self, cert):
        self.cert = cert

    def getpeercert(self):
        return self.cert


PEER_CERT = {
    "subject": ((("commonName", "127.0.0.1"),),),
    "subjectAltName": (("IP Address", "127.0.0.1"),),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("sock", [None, FakeSocket(None), FakeSocket({})])
def test_with_tls_a_peer_call_without_a_client_certificate_gets_401(
    runtime, settings, sock  # noqa: F811
):
    settings.RAFT_TLS_CA = "/ca.crt"
    extra = {"gunicorn.socket": sock} if sock is not None else {}
    response = APIClient().post(
        "/raft/request_vote", message_to_dict(VOTE), format="json", **extra
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "certificate" in response.json()["detail"]
    assert runtime.received == []


def test_with_tls_a_snapshot_chunk_without_a_client_certificate_gets_401(settings):
    settings.RAFT_TLS_CA = "/ca.crt"
    response = APIClient().post("/raft/install_snapshot", {}, format="json")
    assert response.status_code == 401


def test_with_tls_a_peer_with_a_verified_certificate_is_served(
    runtime, settings  # noqa: F811
):
    settings.RAFT_TLS_CA = "/ca.crt"
    response = APIClient().post(
        "/raft/request_vote",
        message_to_dict(VOTE),
        format="json",
        **{"gunicorn.socket": FakeSocket(PEER_CERT)},
    )
    assert response.status_code == 200
    assert runtime.received == [VOTE]


def test_with_tls_a_peer_cannot_speak_for_another_host(runtime, settings):  # noqa: F811
    """A certificate of the CA, but for 127.0.0.2, on a call from
    127.0.0.1:9990: 403, nothing stepped."""
    settings.RAFT_TLS_CA = "/ca.crt"
    other = {"subjectAltName": (("IP Address", "127.0.0.2"),)}
    response = APIClient().post(
        "/raft/request_vote",
        message_to_dict(VOTE),
        format="json",
        **{"gunicorn.socket": FakeSocket(other)},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "not for 127.0.0.1" in response.json()["detail"]
    assert runtime.received == []


@pytest.mark.parametrize(
    "names, host, named",
    [
        ((("IP Address", "127.0.0.1"),), "127.0.0.1", True),
        ((("IP Address", "127.0.0.1"),), "127.0.0.2", False),
        ((("IP Address", "0:0:0:0:0:0:0:1"),), "::1", True),
        ((("DNS", "n1.example"),), "N1.example", True),
        ((("DNS", "n1.example"),), "127.0.0.1", False),
        ((("DNS", "*.example"),), "n2.example", True),
        ((("DNS", "*.example"),), "a.n2.example", False),
        ((("IP Address", "127.0.0.1"),), "localhost", False),
        ((), "127.0.0.1", False),
    ],
)
def test_names_host(names, host, named):
    assert names_host({"subjectAltName": names}, host) is named


def test_verified_peer_reads_the_connection_certificate():
    assert verified_peer({"gunicorn.socket": FakeSocket(PEER_CERT)})
    assert not verified_peer({"gunicorn.socket": FakeSocket({})})
    assert not verified_peer({"gunicorn.socket": object()})
    assert not verified_peer({})


@pytest.fixture
def serve(pki):
    """serve(name): an HTTPS server with the certificate ``name`` of
    ``pki``; returns its address."""
    with contextlib.ExitStack() as stack:

        def start(name):
            files = TLSFiles(*map(str, pki[name]), str(pki["ca"]))
            return stack.enter_context(https_server(files))

        yield start


def test_a_peer_connection_verifies_the_certificate_against_the_ca(pki, serve):
    https_server = serve("node")
    files = TLSFiles(*map(str, pki["node"]), str(pki["ca"]))
    connection = open_connection(https_server, (2.0, 2.0), files.client_context())
    try:
        connection.request("GET", "/")
        assert connection.getresponse().status == 204
    finally:
        close_quietly(connection, https_server)


def test_a_peer_connection_refuses_a_certificate_for_another_address(pki, serve):
    # A certificate from the CA, but for 127.0.0.2 (another node's), at
    # 127.0.0.1: it does not verify.
    address = serve("elsewhere")
    files = TLSFiles(*map(str, pki["node"]), str(pki["ca"]))
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        open_connection(address, (2.0, 2.0), files.client_context())


def test_a_peer_connection_refuses_a_server_of_another_ca(pki, serve):
    address = serve("node")
    files = TLSFiles(*map(str, pki["node"]), str(pki["other_ca"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        open_connection(address, (2.0, 2.0), files.client_context())


def test_tls_files_name_what_cannot_be_used(pki, tmp_path):
    cert, key = map(str, pki["node"])
    ca = str(pki["ca"])
    TLSFiles(cert, key, ca).check()
    with pytest.raises(TLSConfigError, match="cannot read the CA /nowhere"):
        TLSFiles(cert, key, "/nowhere").check()
    other_key = str(pki["elsewhere"][1])
    with pytest.raises(TLSConfigError, match="cannot use the certificate"):
        TLSFiles(cert, other_key, ca).check()


@pytest.mark.parametrize(
    "given, missing",
    [
        (["--tls-cert", "c.pem"], "--tls-key, --tls-ca"),
        (["--tls-cert", "c.pem", "--tls-key", "k.pem"], "--tls-ca"),
        (["--tls-ca", "ca.pem"], "--tls-cert, --tls-key"),
    ],
)
def test_runnode_needs_all_three_tls_files(tmp_path, monkeypatch, given, missing):
    for name in ("RAFT_TLS_CERT", "RAFT_TLS_KEY", "RAFT_TLS_CA"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CommandError, match=f"missing {missing}$"):
        call_command("runnode", "--port", "9990", "--data-dir", str(tmp_path), *given)


def test_runnode_refuses_a_key_that_is_not_the_certificate(pki, tmp_path):
    cert, ca, other_key = pki["node"][0], pki["ca"], pki["elsewhere"][1]
    with pytest.raises(CommandError, match="cannot use the certificate"):
        call_command(
            "runnode", "--port", "9990", "--data-dir", str(tmp_path / "d"),
            "--tls-cert", str(cert), "--tls-key", str(other_key), "--tls-ca", str(ca),
        )  # fmt: skip
    assert not (tmp_path / "d").exists()


def test_a_stalled_handshake_fails_in_time(pki):
    """A client that starts a handshake and stalls must not hold a request
    thread (gunicorn's gthread worker shakes hands on one)."""
    files = TLSFiles(*map(str, pki["node"]), str(pki["ca"]))
    context = files.server_context(handshake_timeout_s=0.2)
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"\x16")  # the first byte of a ClientHello, then nothing
        started = time.monotonic()
        with pytest.raises(ssl.SSLError, match="not done within 0.2 s"):
            context.wrap_socket(server, server_side=True)
        assert time.monotonic() - started < 2


def test_a_handshake_leaves_the_socket_timeout_as_it_was(pki):
    files = TLSFiles(*map(str, pki["node"]), str(pki["ca"]))
    server, client = socket.socketpair()
    server.settimeout(None)
    shaken = threading.Thread(
        target=lambda: files.client_context().wrap_socket(
            client, server_hostname="127.0.0.1"
        )
    )
    shaken.start()
    with server, client:
        wrapped = files.server_context().wrap_socket(server, server_side=True)
        shaken.join()
        assert wrapped.gettimeout() is None
        assert wrapped.getpeercert()  # the client showed its certificate
        wrapped.close()
