"""Safe defaults of a real node: runnode refuses to listen beyond loopback
without the security settings, --insecure warns at every start, a node
answers only the host names it serves on, and its data directory and
secret key are its owner's alone."""

import os
import stat
import subprocess
import sys

import pytest
import requests

from raftsite import security

from .harness import ROOT, LocalCluster, free_ports

pytestmark = pytest.mark.cluster

UNSET = (
    "RAFT_CLUSTER_SECRET",
    "DJANGO_SECRET_KEY",
    "RAFT_ALLOWED_HOSTS",
    "RAFT_AUTH",
)


def bare_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**env, **extra}


def runnode(tmp_path, host, env, *extra):
    (port,) = free_ports(1)
    return subprocess.run(
        [sys.executable, "manage.py", "runnode", "--port", str(port),
         "--host", host, "--data-dir", str(tmp_path / "data"), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.parametrize(
    "extra_env, missing",
    [
        ({}, "RAFT_CLUSTER_SECRET is not set"),
        (
            {"RAFT_CLUSTER_SECRET": "s" * 32,
             "DJANGO_SECRET_KEY": security.DEVELOPMENT_SECRET_KEY},
            "DJANGO_SECRET_KEY is the public development key",
        ),
        (
            {"RAFT_CLUSTER_SECRET": "s" * 32, "RAFT_AUTH": "open"},
            "clients need no token (RAFT_AUTH=open)",
        ),
    ],
)  # fmt: skip
def test_runnode_beyond_loopback_without_settings_is_refused(
    tmp_path, extra_env, missing
):
    result = runnode(tmp_path, "0.0.0.0", bare_env(**extra_env))
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, lines
    assert lines[0].startswith("CommandError: refusing to listen on 0.0.0.0"), lines
    assert missing in lines[0] and "--insecure" in lines[0], lines
    assert not (tmp_path / "data").exists()  # refused before anything


def test_runnode_refuses_an_unknown_raft_auth(tmp_path):
    result = runnode(tmp_path, "127.0.0.1", bare_env(RAFT_AUTH="yes"))
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, lines
    assert "RAFT_AUTH must be 'required' or 'open'" in lines[0], lines


class InsecureCluster(LocalCluster):
    def argv(self, node):
        return [*super().argv(node), "--insecure"]


@pytest.fixture(scope="module")
def wildcard_node(tmp_path_factory):
    cluster = InsecureCluster(
        1, base_dir=tmp_path_factory.mktemp("insecure"), host="0.0.0.0"
    )
    cluster.env = {k: "" for k in UNSET}
    with cluster:
        cluster.start()
        cluster.leader(timeout=20)
        yield cluster


def test_insecure_serves_beyond_loopback_and_warns_at_every_start(wildcard_node):
    cluster = wildcard_node
    node = cluster.nodes[0]
    warning = [line for line in cluster.stderr_lines(node) if "--insecure" in line]
    assert warning and "RAFT_CLUSTER_SECRET is not set" in warning[0], warning
    key = (node.data_dir / security.SECRET_KEY_FILE).read_text()
    cluster.write(node, "beyond loopback")
    cluster.restart(node)
    cluster.leader(timeout=20)
    warning = [line for line in cluster.stderr_lines(node) if "--insecure" in line]
    assert warning, cluster.stderr_lines(node)
    # Its own files were made for it alone: nothing to tighten at a restart.
    lines = cluster.stderr_lines(node)
    assert not [line for line in lines if "open to other users" in line], lines
    # The node's own key, kept across restarts.
    assert (node.data_dir / security.SECRET_KEY_FILE).read_text() == key


def test_data_directory_and_its_files_are_the_owners(wildcard_node):
    node = wildcard_node.nodes[0]
    assert stat.S_IMODE(node.data_dir.stat().st_mode) == 0o700
    for name in ("db.sqlite3", "accounts.sqlite3", security.SECRET_KEY_FILE):
        mode = stat.S_IMODE((node.data_dir / name).stat().st_mode)
        assert not mode & 0o077, (name, oct(mode))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_wildcard_node_answers_its_machines_names(wildcard_node, host):
    node = wildcard_node.nodes[0]
    url = f"http://127.0.0.1:{node.port}/api/status"
    r = requests.get(url, headers={"Host": f"{host}:{node.port}"}, timeout=5)
    assert r.status_code == 200


def test_a_loopback_cluster_refuses_other_host_names(shared_cluster):
    """DNS rebinding: a page on evil.com resolving to 127.0.0.1 gets 400,
    while the node's own names and its peers' traffic work as before."""
    node = shared_cluster.nodes[0]
    url = f"{node.base_url}/api/status"
    for host in ("evil.com", f"evil.com:{node.port}"):
        r = requests.get(url, headers={"Host": host}, timeout=5)
        assert r.status_code == 400, host
    for host in (f"127.0.0.1:{node.port}", f"localhost:{node.port}"):
        assert requests.get(url, headers={"Host": host}, timeout=5).ok, host
    leader = shared_cluster.leader()
    follower = shared_cluster.others(leader)[0]
    answer = shared_cluster.write(follower, "forwarded after the host check")
    assert answer["forwarded"] is True
    shared_cluster.wait_applied(answer["index"], shared_cluster.nodes)
