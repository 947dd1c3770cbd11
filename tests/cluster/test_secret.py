"""A cluster with RAFT_CLUSTER_SECRET refuses peer calls that lack it."""

import uuid

import pytest

from .conftest import running_cluster

pytestmark = pytest.mark.cluster

# Terms far above the cluster's: accepted, any of these would depose the
# leader or start an election.
HIGH_TERM = 10_000
RPCS = {
    "append_entries": {
        "term": HIGH_TERM,
        "leader_id": "127.0.0.1:1",
        "prev_log_index": 0,
        "prev_log_term": 0,
        "entries": [],
        "leader_commit": 0,
    },
    "request_vote": {
        "term": HIGH_TERM,
        "candidate_id": "127.0.0.1:1",
        "last_log_index": 10**9,
        "last_log_term": HIGH_TERM,
    },
    "timeout_now": {"term": HIGH_TERM, "leader_id": "127.0.0.1:1"},
    # Not a message to the core, but a leader's word all the same.
    "read_index": {"source": "127.0.0.1:1", "dest": "127.0.0.1:1"},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {"RAFT_CLUSTER_SECRET": f"secret-{uuid.uuid4().hex}"}
    with running_cluster(tmp_path_factory, "secret", env=env) as cluster:
        yield cluster


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_peer_call_without_secret_is_refused_and_changes_nothing(cluster, rpc):
    for node in cluster.nodes:
        r = cluster.post(node, f"/raft/{rpc}", RPCS[rpc])
        assert r.status_code == 401, (node.address, r.status_code, r.text)
        assert r.json()["error"] == "unauthorized", r.text
    # Accepted, the call would have raised the node's term to HIGH_TERM.
    for node in cluster.nodes:
        assert cluster.status(node)["term"] < HIGH_TERM, node.address
    leader = cluster.leader()
    index = cluster.write(leader, f"after-{rpc}")["index"]
    cluster.wait_applied(index, cluster.nodes)


def test_cluster_with_secret_replicates_forwarded_writes(cluster):
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    answer = cluster.write(follower, "with-secret")
    assert answer["forwarded"] is True
    cluster.wait_applied(answer["index"], cluster.nodes)
    for node in cluster.nodes:
        entry = cluster.log(node, start=answer["index"])[0]
        assert entry["command"] == "with-secret"


def test_a_server_to_add_gets_nothing_until_it_proves_the_secret(cluster):
    """POST /api/servers {"address": "evil:80"} once made the leader send
    its log, and the secret in a header, to any host; a fake answer was
    believed. Now the leader first challenges it (consensus/peer_proof.py)."""
    from tests.nodes.stub import StubServer

    impostor = StubServer()  # answers 200 {} to everything
    try:
        leader = cluster.leader()

        def members():
            servers = cluster.get(leader, "/api/servers").json()["servers"]
            return {(s["id"], s["voter"]) for s in servers}

        before = members()
        r = cluster.post(leader, "/api/servers", {"address": impostor.address})
        assert r.status_code == 422, r.text
        assert "did not prove it holds the cluster secret" in r.json()["detail"]
        assert members() == before
        assert [req.path for req in impostor.received] == ["/raft/prove"]
        for req in impostor.received:
            assert "x-raft-secret" not in {h.lower() for h in req.headers}
    finally:
        impostor.close()
