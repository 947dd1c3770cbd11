"""Safe defaults (raftsite.security): what a node needs beyond loopback, its
own secret key, the host names it answers and a private data directory."""

import os
import stat
import sys

import pytest

from raftsite import security

STRONG_KEY = "k" * 40 + "0123456789"


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True), ("127.3.4.5", True), ("[::1]", True),
        ("localhost", True), ("0.0.0.0", False), ("[::]", False),
        ("10.0.0.5", False), ("node1.example.com", False),
    ],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert security.is_loopback(host) is loopback


@pytest.mark.parametrize(
    "environ, missing",
    [
        ({}, ["RAFT_CLUSTER_SECRET is not set"]),
        ({"RAFT_CLUSTER_SECRET": "short"}, ["RAFT_CLUSTER_SECRET is shorter"]),
        ({"RAFT_CLUSTER_SECRET": "s" * 16}, []),
        (
            {"RAFT_CLUSTER_SECRET": "s" * 16,
             "DJANGO_SECRET_KEY": security.DEVELOPMENT_SECRET_KEY},
            ["DJANGO_SECRET_KEY is the public development key"],
        ),
        (
            {"RAFT_CLUSTER_SECRET": "s" * 16, "DJANGO_SECRET_KEY": "abc"},
            ["DJANGO_SECRET_KEY is weak"],
        ),
        ({"RAFT_CLUSTER_SECRET": "s" * 16, "DJANGO_SECRET_KEY": STRONG_KEY}, []),
        (
            {"RAFT_CLUSTER_SECRET": "s" * 16, "RAFT_AUTH": "open"},
            ["clients need no token"],
        ),
        ({"RAFT_CLUSTER_SECRET": "s" * 16, "RAFT_AUTH": "required"}, []),
        (
            {"DJANGO_SECRET_KEY": security.DEVELOPMENT_SECRET_KEY},
            ["RAFT_CLUSTER_SECRET is not set", "DJANGO_SECRET_KEY is the public"],
        ),
    ],
)  # fmt: skip
def test_what_a_node_beyond_loopback_lacks(environ, missing):
    found = security.missing_for_network(environ)
    assert len(found) == len(missing), found
    for text, start in zip(found, missing, strict=True):
        assert text.startswith(start), found


@pytest.mark.parametrize(
    "given, host, insecure, expected",
    [
        ("", "127.0.0.1", False, "open"),
        ("", "0.0.0.0", False, "required"),
        ("", "10.1.2.3", True, "open"),
        ("required", "127.0.0.1", False, "required"),
        ("required", "0.0.0.0", True, "required"),
        ("open", "0.0.0.0", False, "open"),  # then refused as missing
    ],
)
def test_client_auth_is_required_beyond_loopback(given, host, insecure, expected):
    environ = {"RAFT_AUTH": given} if given else {}
    assert security.client_auth(environ, host, insecure) == expected


def test_client_auth_refuses_unknown_values():
    with pytest.raises(ValueError, match="RAFT_AUTH must be"):
        security.client_auth({"RAFT_AUTH": "yes"}, "127.0.0.1", False)


def test_a_node_makes_its_own_secret_key_once(tmp_path):
    """No DJANGO_SECRET_KEY: the serving node's key is made at first use,
    readable by its owner only, and the same at every start."""
    key = security.secret_key({}, tmp_path, serving=True)
    assert key != security.DEVELOPMENT_SECRET_KEY and len(key) >= 50
    path = tmp_path / security.SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert security.secret_key({}, tmp_path, serving=True) == key
    # An admin run beside the stopped node signs with the node's key.
    assert security.secret_key({}, tmp_path, serving=False) == key
    other = tmp_path / "other"
    other.mkdir()
    assert security.secret_key({}, other, serving=True) != key


def test_a_given_key_wins_and_a_client_command_needs_none(tmp_path):
    given = {"DJANGO_SECRET_KEY": STRONG_KEY}
    assert security.secret_key(given, tmp_path, serving=True) == STRONG_KEY
    assert not (tmp_path / security.SECRET_KEY_FILE).exists()
    # A process serving no node (clientcommand, a shell) writes nothing.
    key = security.secret_key({}, tmp_path, serving=False)
    assert key == security.DEVELOPMENT_SECRET_KEY
    assert not (tmp_path / security.SECRET_KEY_FILE).exists()


@pytest.mark.parametrize(
    "node_id, expected",
    [
        ("127.0.0.1:9990", ["127.0.0.1", "localhost", "[::1]"]),
        ("127.0.0.2:9990", ["127.0.0.2", "localhost", "127.0.0.1", "[::1]"]),
        ("[::1]:9990", ["[::1]", "localhost", "127.0.0.1"]),
        ("10.0.0.5:9990", ["10.0.0.5"]),
        ("node1.example.com:9990", ["node1.example.com"]),
        ("", ["localhost", "127.0.0.1", "[::1]"]),
    ],
)
def test_allowed_hosts_follow_the_bound_host(node_id, expected):
    assert sorted(security.allowed_hosts(node_id)) == sorted(expected)


def test_allowed_hosts_of_a_wildcard_bind_are_the_machines_names():
    hosts = security.allowed_hosts("0.0.0.0:9990", "proxy.example.com")
    assert {"0.0.0.0", "127.0.0.1", "localhost", "proxy.example.com"} <= set(hosts)
    assert set(security.machine_names()) <= set(hosts)
    assert "*" not in hosts and "evil.com" not in hosts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux interfaces")
def test_a_wildcard_bind_answers_every_interface_address():
    """The contract: a node answers any address it serves on; 0.0.0.0
    serves on every interface's."""
    addresses = security._interface_addresses()
    assert "127.0.0.1" in addresses
    assert set(addresses) <= set(security.allowed_hosts("0.0.0.0:9990"))


def test_dns_rebinding_gets_400(client):
    """A page on evil.com resolving to 127.0.0.1 reaches the node with
    Host: evil.com: refused before any view runs."""
    response = client.get("/api/status", HTTP_HOST="evil.com")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert client.get("/api/status", HTTP_HOST="evil.com:9990").status_code == 400
    assert client.get("/admin/", HTTP_HOST="evil.com").status_code == 400


def test_the_data_directory_is_made_for_its_owner_only(tmp_path):
    data_dir = tmp_path / "parent" / "node"
    assert security.private_data_dir(data_dir) is None
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_an_open_data_directory_is_tightened_with_a_warning(tmp_path):
    data_dir = tmp_path / "node"
    (data_dir / "snapshots").mkdir(parents=True)
    (data_dir / "db.sqlite3").write_text("x")
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "snapshots", 0o775)
    os.chmod(data_dir / "db.sqlite3", 0o644)
    warning = security.private_data_dir(data_dir)
    assert warning.startswith(f"warning: data directory {data_dir} was open")
    assert "3 of its files" in warning
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "snapshots").stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "db.sqlite3").stat().st_mode) == 0o600
    assert security.private_data_dir(data_dir) is None  # nothing left to do
