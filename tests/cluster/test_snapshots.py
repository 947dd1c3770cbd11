"""Snapshots and log compaction on real processes (Raft §7): every node
compacts its log, a follower that was down catches up from the leader's
snapshot, a restart starts from the snapshot, and a new server joins a
compacted cluster. Small RAFT_SNAPSHOT_* values make it quick."""

import json
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import LocalCluster, manage, one_line_failure

pytestmark = pytest.mark.cluster

INITIAL = 3
ENTRIES = 40  # RAFT_SNAPSHOT_ENTRIES
TRAILING = 10  # RAFT_SNAPSHOT_TRAILING


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Nodes 0-2 form the cluster; node 3 starts as a non-member."""
    env = {
        "RAFT_SNAPSHOT_ENTRIES": str(ENTRIES),
        "RAFT_SNAPSHOT_TRAILING": str(TRAILING),
    }
    base_dir = tmp_path_factory.mktemp("snaps")
    cluster = LocalCluster(4, base_dir=base_dir, env=env, members=INITIAL)
    try:
        yield cluster.start_members()
    finally:
        cluster.close()


def write_many(cluster, count, prefix):
    leader = cluster.leader()
    commands = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda c: cluster.write(leader, c), commands))
    return commands, max(w["index"] for w in written)


def query(node, sql, args=()):
    """Read the node's Raft database (WAL: a reader never blocks it)."""
    db = sqlite3.connect(f"file:{node.data_dir / 'db.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def applied_messages(node):
    return [c for (c,) in query(node, "SELECT command FROM consensus_appliedmessage")]


def snapshot_manifests(node):
    directory = node.data_dir / "snapshots"
    return sorted(
        json.loads(p.read_text())["last_included_index"]
        for p in directory.glob("snap-*.json")
    )


def first_stored_index(node):
    return query(node, 'SELECT MIN("index") FROM consensus_logentry')[0][0]


def compacted(node):
    snapshots = snapshot_manifests(node)
    first = first_stored_index(node)
    return bool(snapshots) and first is not None and first > 1


def snapshots_settled(cluster, node):
    """The node's latest snapshot is compacted behind (its "Took snapshot"
    line, printed once older snapshot files are removed) and no other is
    due: a node publishes a new snapshot's manifest before it removes the
    older ones, so until then it holds two."""
    status = cluster.status(node)
    index = status["snapshot_index"]
    return (
        compacted(node)
        and status["last_applied"] - index < ENTRIES
        and snapshot_manifests(node)[-1] == index
        and any(
            e.startswith(f"Took snapshot through {index} ")
            for e in cluster.events(node)
        )
    )


def test_every_node_snapshots_and_compacts_its_log(cluster):
    members = cluster.nodes[:INITIAL]
    commands, last = write_many(cluster, 3 * ENTRIES, "compact")
    cluster.wait_applied(last, members)
    cluster.wait_until(
        lambda: all(snapshots_settled(cluster, n) for n in members),
        10,
        "every node compacted behind its latest snapshot",
    )
    for node in members:
        snapshot = snapshot_manifests(node)[-1]
        # One snapshot file kept; the log keeps the trailing window.
        assert len(snapshot_manifests(node)) == 1
        assert first_stored_index(node) <= snapshot - TRAILING + 1
        assert applied_messages(node)[-len(commands) :].count(commands[0]) == 1
    leader = cluster.leader()
    body = cluster.get(leader, "/api/log").json()
    assert body["first_index"] == first_stored_index(leader)


def test_a_follower_that_was_down_catches_up_from_a_snapshot(cluster):
    members = cluster.nodes[:INITIAL]
    leader = cluster.leader()
    follower = next(n for n in members if n is not leader)
    cluster.kill(follower)
    commands, last = write_many(cluster, 3 * ENTRIES, "behind")
    # The leader compacted past everything the follower holds.
    cluster.wait_until(
        lambda: first_stored_index(leader)
        > cluster.status(leader)["commit_index"] - 3 * ENTRIES,
        10,
        "the leader compacted past the follower",
    )
    cluster.restart(follower)
    cluster.wait_applied(last, members, timeout=20)
    assert applied_messages(follower) == applied_messages(leader)
    assert any(e.startswith("Restored snapshot") for e in cluster.events(follower))
    assert set(commands) <= set(applied_messages(follower))


def test_a_restarted_cluster_starts_from_its_snapshots(cluster):
    members = cluster.nodes[:INITIAL]
    before = {n.address: applied_messages(n) for n in members}
    commit = cluster.status(cluster.leader())["commit_index"]
    for node in members:
        cluster.kill(node)
    for node in members:
        cluster.start_node(node)
    leader = cluster.leader(timeout=20)
    cluster.wait_applied(commit, members, timeout=20)
    for node in members:
        assert applied_messages(node) == before[node.address]
        # Nothing already applied is printed again at restart.
        assert not any(line.startswith("Logs") for line in cluster.events(node))
    count = cluster.write(leader, "count")
    cluster.wait_applied(count["index"], members)
    expected = f"Count {len(before[leader.address]) + 1}"
    for node in members:
        assert expected in cluster.events(node)


def test_a_new_server_joins_a_compacted_cluster(cluster):
    members = cluster.nodes[:INITIAL]
    leader = cluster.leader()
    assert first_stored_index(leader) > 1
    newcomer = cluster.start_node(3)
    cluster.wait_until(lambda: cluster.try_status(newcomer), 20, "newcomer serving")
    result = manage(
        "addserver", newcomer.address, "-S", leader.address, "--progress", timeout=60
    )
    assert result.returncode == 0, one_line_failure(result)
    assert result.stdout.startswith(f"Added {newcomer.address}"), result.stdout
    # Progress lines, if the catch-up lasted long enough for one, name it.
    for line in result.stderr.splitlines():
        assert line.startswith(f"catching up {newcomer.address}: "), line
    members = [*members, newcomer]
    commands, last = write_many(cluster, 5, "joined")
    cluster.wait_applied(last, members, timeout=20)
    assert applied_messages(newcomer) == applied_messages(leader)
    assert any(e.startswith("Restored snapshot") for e in cluster.events(newcomer))
