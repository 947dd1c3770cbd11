"""Crashes and restarts: leader failover, clean stop, whole-cluster crash.

One cluster for the module; each test starts from every node running.
"""

import sqlite3
import time
import uuid

import pytest

from .conftest import running_cluster
from .harness import manage, one_line_failure

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, "failover") as cluster:
        yield cluster


@pytest.fixture
def healthy(cluster):
    """Every node running, one leader agreed."""
    for node in cluster.nodes:
        if not node.running():
            cluster.restart(node)
        elif node.paused:
            cluster.resume(node)
    cluster.leader(timeout=10)
    return cluster


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_same_log(cluster, node, reference, timeout=10):
    """Wait until ``node`` holds exactly the committed log of ``reference``."""

    def same():
        want = cluster.log(reference)
        return cluster.log(node) == want and want

    return cluster.wait_until(
        same, timeout, f"{node.address} caught up with {reference.address}"
    )


def test_leader_killed_new_leader_and_restarted_node_catches_up(healthy):
    cluster = healthy
    old = cluster.leader()
    old_term = cluster.status(old)["term"]
    before = cluster.write(old, unique("before-kill"))
    cluster.wait_applied(before["index"], cluster.nodes)

    cluster.kill(old)
    new = cluster.leader(timeout=10)
    assert new is not old
    new_term = cluster.status(new)["term"]
    assert new_term > old_term
    line = f"Became leader for term {new_term}"
    cluster.wait_until(lambda: line in cluster.events(new), 5, line)
    follower = next(n for n in cluster.others(old) if n is not new)
    commands = [unique("after-kill"), unique("after-kill-forwarded")]
    written = [cluster.write(new, commands[0]), cluster.write(follower, commands[1])]
    assert written[1]["forwarded"] is True
    assert all(w["index"] > before["index"] for w in written)

    cluster.restart(old)
    log = {e["index"]: e["command"] for e in wait_same_log(cluster, old, new)}
    assert [log[w["index"]] for w in written] == commands
    cluster.wait_applied(written[-1]["index"], [old])
    # Back in the cluster: it agrees on the leader with the others.
    assert cluster.leader() in cluster.nodes


def test_sigterm_stops_a_node_cleanly(healthy):
    """SIGTERM stops a node (master and worker) by itself; it comes back."""
    cluster = healthy
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    started = time.monotonic()
    assert cluster.stop(follower, timeout=10), "node needed SIGKILL after SIGTERM"
    took = time.monotonic() - started
    assert took < 5, f"SIGTERM stop took {took:.1f} s"
    assert follower.proc.returncode == 0, follower.proc.returncode
    index = cluster.write(leader, unique("one-down"))["index"]
    cluster.restart(follower)
    cluster.wait_applied(index, [follower])
    wait_same_log(cluster, follower, leader)


def test_paused_leader_is_replaced_and_rejoins_as_follower(healthy):
    """SIGSTOP of the leader: the others elect a new one; resumed, the old
    leader takes the newer term and the new leader's log."""
    cluster = healthy
    old = cluster.leader()
    old_term = cluster.status(old)["term"]
    cluster.pause(old)
    new = cluster.leader(timeout=10)
    assert new is not old
    assert cluster.status(new)["term"] > old_term
    index = cluster.write(new, unique("while-paused"))["index"]

    cluster.resume(old)
    cluster.wait_applied(index, [old])
    wait_same_log(cluster, old, cluster.leader())
    assert cluster.status(old)["term"] > old_term


def test_write_without_a_majority_is_not_acknowledged(healthy):
    """With both followers stopped the leader cannot commit: the write is
    refused or times out (never 200); once they resume, writes commit and
    every log is the same."""
    cluster = healthy
    leader = cluster.leader()
    followers = cluster.others(leader)
    for node in followers:
        cluster.pause(node)
    command = unique("no-majority")
    try:
        r = cluster.post(leader, "/api/commands", {"command": command}, timeout=(1, 30))
    finally:
        for node in followers:
            cluster.resume(node)
    assert r.status_code in (503, 504), (r.status_code, r.text)
    assert r.json()["error"] in ("no_leader", "timeout"), r.text
    if r.status_code == 503:
        assert "Retry-After" in r.headers

    new = cluster.leader(timeout=10)
    index = cluster.write(new, unique("majority-back"))["index"]
    cluster.wait_applied(index, cluster.nodes)
    log = wait_same_log(cluster, followers[0], new)
    for node in cluster.others(new):
        wait_same_log(cluster, node, new)
    # The refused write is in the log at most once.
    assert [e["command"] for e in log].count(command) <= 1


def read_db(node):
    """(current_term, voted_for, entries) straight from a stopped node's DB."""
    # Read-only: a read-write close would checkpoint the WAL and change
    # the files the node restarts from.
    db = sqlite3.connect(f"file:{node.data_dir / 'db.sqlite3'}?mode=ro", uri=True)
    try:
        term, voted_for = db.execute(
            "SELECT current_term, voted_for FROM consensus_persistentstate"
        ).fetchone()
        entries = db.execute(
            "SELECT `index`, term, type, command FROM consensus_logentry ORDER BY `index`"
        ).fetchall()
    finally:
        db.close()
    return (
        term,
        voted_for,
        [{"index": i, "term": t, "type": ty, "command": c} for i, t, ty, c in entries],
    )


def test_all_killed_and_restarted_keep_log_term_and_vote(healthy):
    """SIGKILL of every node loses no acknowledged entry, term or vote, and
    nothing applied before the crash is applied (printed) again."""
    cluster = healthy
    leader = cluster.leader()
    for i in range(5):
        cluster.write(cluster.nodes[i % 3], unique(f"pre-crash-{i}"))
    count_index = cluster.write(leader, "count")["index"]
    cluster.wait_applied(count_index, cluster.nodes)
    terms = {n.address: cluster.status(n)["term"] for n in cluster.nodes}
    leader_term = terms[leader.address]
    log = wait_same_log(cluster, cluster.nodes[0], leader)
    for node in cluster.nodes[1:]:
        wait_same_log(cluster, node, leader)
    count_lines = {
        n.address: [e for e in cluster.events(n) if e.startswith("Count ")][-1]
        for n in cluster.nodes
    }

    cluster.kill_all()

    for node in cluster.nodes:
        term, voted_for, entries = read_db(node)
        assert term >= terms[node.address], node.address
        assert entries[: len(log)] == log, node.address
        if node is leader:
            assert (term, voted_for) == (leader_term, leader.address)

    # One node alone answers from its persisted state, with no leader.
    alone = cluster.nodes[0]
    cluster.restart(alone)
    status = cluster.wait_until(lambda: cluster.status(alone), 15, "lone node serving")
    assert status["leader"] is None and status["role"] in ("follower", "candidate")
    assert sorted(s["id"] for s in status["servers"]) == sorted(
        n.address for n in cluster.nodes
    )
    r = cluster.post(alone, "/api/commands", {"command": "alone"})
    assert (r.status_code, r.json()["error"]) == (503, "no_leader"), r.text
    assert "Retry-After" in r.headers
    # The client retries "no leader" until its --timeout (10 s by default),
    # then gives up in one line.
    line = one_line_failure(
        manage("clientcommand", "-m", "alone", "-S", alone.address, "--timeout", "2")
    )
    assert "no leader known (tried for 2 s)" in line, line

    for node in cluster.nodes[1:]:
        cluster.restart(node)
    new_leader = cluster.leader(timeout=10)
    assert cluster.status(new_leader)["term"] > leader_term
    after = cluster.write(new_leader, unique("post-crash"))
    assert after["index"] > log[-1]["index"]
    cluster.wait_applied(after["index"], cluster.nodes)
    for node in cluster.nodes:
        status = cluster.status(node)
        assert status["term"] >= terms[node.address], node.address
        assert cluster.log(node)[: len(log)] == log, node.address
        events = cluster.events(node, all_incarnations=True)
        assert events.count(count_lines[node.address]) == 1, node.address
