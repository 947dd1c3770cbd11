"""A project's own state part (consensus/parts.py), plugged in with
RAFT_STATE_APPS and RAFT_STATE_PARTS: its APP entries apply once on every
server, it answers reads at each consistency level, and a server added
later gets its table in a snapshot."""

import sqlite3
import uuid

import pytest
import requests

from .harness import LocalCluster, manage, one_line_failure

pytestmark = pytest.mark.cluster

ENV = {
    "RAFT_STATE_APPS": "tests.stateplugin",
    "RAFT_STATE_PARTS": "tests.stateplugin.parts.CounterPart",
    "RAFT_SNAPSHOT_ENTRIES": "20",
    "RAFT_SNAPSHOT_TRAILING": "5",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalCluster(4, base_dir=tmp_path_factory.mktemp("parts"), env=ENV,
                           members=3)  # fmt: skip
    try:
        cluster.start_members()
        yield cluster
    finally:
        cluster.close()


def add(cluster, node, name, n, **pair):
    url = cluster.node(node).base_url + "/api/apps/counter"
    return requests.post(url, json={"data": {"name": name, "add": n}, **pair},
                         timeout=15)  # fmt: skip


def counter_in_db(node, name):
    with sqlite3.connect(node.data_dir / "db.sqlite3") as db:
        row = db.execute(
            "SELECT value FROM stateplugin_counter WHERE name = ?", (name,)
        ).fetchone()
    return row[0] if row else None


def test_entries_apply_once_everywhere_and_reads_see_them(cluster):
    follower = cluster.others(cluster.leader())[0]
    pair = {"client_id": f"c-{uuid.uuid4().hex}", "seq": 1}
    first = add(cluster, follower, "hits", 5, **pair)
    assert first.status_code == 200 and first.json()["forwarded"] is True, first.text
    again = add(cluster, follower, "hits", 5, **pair)
    assert again.json()["index"] == first.json()["index"]
    last = add(cluster, cluster.leader(), "hits", 2).json()
    cluster.wait_applied(last["index"], cluster.nodes[:3])
    for node in cluster.nodes[:3]:
        assert counter_in_db(node, "hits") == 7
        for consistency in ("linearizable", "leader", "stale"):
            r = requests.get(node.base_url + "/api/apps/counter",
                             params={"name": "hits", "consistency": consistency},
                             timeout=15)  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["result"] == {"name": "hits", "value": 7}


def test_refusals(cluster):
    leader = cluster.leader()
    bad = requests.post(leader.base_url + "/api/apps/counter",
                        json={"data": {"name": "x"}}, timeout=15)  # fmt: skip
    assert bad.status_code == 409 and bad.json()["error"] == "conflict", bad.text
    # Beyond SQLite's 64 bits: refused, not a failed apply that stops the
    # servers (the part checks: test_schema.py now reaches this part).
    huge = add(cluster, leader, "x", 10**30)
    assert huge.status_code == 409, huge.text
    assert cluster.try_status(leader) is not None
    none = requests.post(leader.base_url + "/api/apps/nothing",
                         json={"data": 1}, timeout=15)  # fmt: skip
    assert none.status_code == 404, none.text


def test_a_server_added_later_gets_the_part_in_a_snapshot(cluster):
    for _ in range(30):
        assert add(cluster, cluster.leader(), "bulk", 1).status_code == 200
    newcomer = cluster.nodes[3]
    cluster.start_node(newcomer)
    added = manage("addserver", newcomer.address, "-S", cluster.leader().address,
                   "--no-progress", timeout=90)  # fmt: skip
    assert added.returncode == 0, one_line_failure(added)
    assert any("Restored snapshot" in line for line in cluster.events(newcomer))
    r = requests.get(newcomer.base_url + "/api/apps/counter",
                     params={"name": "bulk"}, timeout=15)  # fmt: skip
    assert r.json()["result"]["value"] == 30
    assert counter_in_db(newcomer, "hits") == 7
