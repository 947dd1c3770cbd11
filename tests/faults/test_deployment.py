"""The multi-machine path of the README's Deployment section (issue 13): each
server in its own network namespace on its own address, started with the
documented settings (a cluster secret, no --insecure: clients need tokens),
the first admin token made on a server's own machine, clients elsewhere
with tokens, and a rolling restart one server at a time, leadership moved
away first."""

import secrets
import subprocess
import sys

import pytest
import requests

from tests.cluster.harness import ROOT

from .netns import Network
from .runner import NetnsCluster

# About a minute each on 2 cores: make slow (RAFT_SLOW=1), not the default run.
pytestmark = [pytest.mark.faults, pytest.mark.slow]


class DeployedCluster(NetnsCluster):
    """NetnsCluster as an operator runs it: no --insecure, tokens required."""

    def __init__(self, network, *, base_dir):
        super().__init__(network, base_dir=base_dir, env={"RAFT_AUTH": "required"})

    def argv(self, node):
        return [*self.network.exec_prefix(node.index),
                *super(NetnsCluster, self).argv(node)]  # fmt: skip


def manage_on(network, i, *args) -> subprocess.CompletedProcess:
    """manage.py run on server i's machine (inside its namespace)."""
    argv = [*network.exec_prefix(i), sys.executable, "manage.py", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_three_machines_with_tokens_and_a_rolling_restart(network_namespaces, tmp_path):
    with Network(3) as network:
        cluster = DeployedCluster(network, base_dir=tmp_path)
        try:
            cluster.start().leader(timeout=60)
            leader = cluster.leader()
            r = requests.post(leader.base_url + "/api/commands",
                              json={"command": "anonymous"}, timeout=15)  # fmt: skip
            assert r.status_code == 401, r.text

            first = manage_on(network, 0, "createtoken", "--username", "root",
                              "--permissions", "read,write,admin",
                              "-S", cluster.nodes[0].address)  # fmt: skip
            assert first.returncode == 0, first.stderr
            token = first.stdout.strip().splitlines()[-1]
            # From another machine (the test's, on the bridge) only with it.
            elsewhere = manage_on(network, 1, "createtoken", "--username", "x",
                                  "--permissions", "read",
                                  "-S", cluster.nodes[0].address)  # fmt: skip
            assert elsewhere.returncode != 0 and "401" in elsewhere.stderr
            cluster.http.headers["Authorization"] = f"Token {token}"

            for node in list(cluster.nodes):
                leader = cluster.leader(timeout=30)
                if node is leader:
                    moved = subprocess.run(
                        [sys.executable, "manage.py", "transferleader",
                         "-S", leader.address, "--token", token],
                        cwd=ROOT, capture_output=True, text=True, timeout=60,
                    )  # fmt: skip
                    assert moved.returncode == 0, moved.stderr
                cluster.stop(node)
                cluster.start_node(node)
                cluster.wait_until(
                    lambda n=node: requests.get(
                        n.base_url + "/api/health/ready", timeout=5).ok,
                    60, f"{node.address} ready again",
                )  # fmt: skip
                written = cluster.write(cluster.leader(timeout=30),
                                        f"after restarting {node.address}")  # fmt: skip
                cluster.wait_applied(written["index"], cluster.nodes, timeout=30)
            key = secrets.token_hex(4)
            put = requests.put(cluster.nodes[2].base_url + f"/api/kv/{key}",
                               json={"value": "v"}, timeout=15,
                               headers={"Authorization": f"Token {token}"})  # fmt: skip
            assert put.status_code == 200, put.text
        finally:
            cluster.close()
