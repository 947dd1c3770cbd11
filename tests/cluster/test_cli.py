"""The client management commands against a live cluster and a dead server."""

import re
import subprocess
import sys
import uuid

import pytest

from .harness import ROOT, free_ports, manage, one_line_failure

pytestmark = pytest.mark.cluster

INDEX = re.compile(r"\bindex (\d+)")


def succeeded(result):
    """Assert exit 0 without a traceback; return the logged index."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    match = INDEX.search(result.stdout)
    assert match, f"no 'index <n>' in {result.stdout!r}"
    return int(match.group(1))


def entry_at(cluster, node, index):
    return cluster.log(node, start=index)[0]


def test_clientcommand_via_follower(shared_cluster):
    cluster = shared_cluster
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    message = f"I like beer. {uuid.uuid4().hex[:8]}"
    result = manage("clientcommand", "-m", message, "-S", f":{follower.port}")
    index = succeeded(result)
    assert "forward" in result.stdout.lower(), result.stdout
    assert leader.address in result.stdout, result.stdout
    entry = entry_at(cluster, leader, index)
    assert (entry["type"], entry["command"]) == ("command", message)


@pytest.mark.parametrize("command", ["print", "count"])
def test_print_and_count(shared_cluster, command):
    cluster = shared_cluster
    leader = cluster.leader()
    index = succeeded(manage(command, "-S", leader.address))
    assert entry_at(cluster, leader, index)["command"] == command
    cluster.wait_applied(index, cluster.nodes)


def test_status(shared_cluster):
    cluster = shared_cluster
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    result = manage("status", "-S", f":{follower.port}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    # status commits nothing: it reports the answering server's state,
    # its commit index among it.
    assert re.search(r"commit.index\W+\d+", result.stdout), result.stdout
    assert follower.address in result.stdout
    assert leader.address in result.stdout


def test_against_dead_server_one_line_nonzero():
    """Every client command fails with one line and no traceback when its
    server is unreachable."""
    (dead_port,) = free_ports(1)
    server = f":{dead_port}"
    commands = [
        ["clientcommand", "-m", "hello", "-S", server],
        ["print", "-S", server],
        ["count", "-S", server],
        ["status", "-S", server],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    for args, proc in zip(commands, procs, strict=False):
        out, err = proc.communicate(timeout=60)
        one_line_failure(subprocess.CompletedProcess(args, proc.returncode, out, err))
