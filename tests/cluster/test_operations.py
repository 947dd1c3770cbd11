"""Operators' endpoints against a real cluster (issue 13): health checks
and Prometheus metrics that move as commands commit."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .harness import LocalCluster

pytestmark = pytest.mark.cluster


def scrape(node) -> dict:
    """{(name, labels as a sorted tuple): value} of a node's /metrics."""
    r = requests.get(node.base_url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_every_member_is_live_and_ready(shared_cluster):
    for node in shared_cluster.nodes:
        live = requests.get(node.base_url + "/api/health/live", timeout=10)
        assert live.status_code == 200 and live.json()["status"] == "live"
        ready = requests.get(node.base_url + "/api/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["leader"] == shared_cluster.leader().address


def test_a_server_waiting_to_be_added_is_live_but_not_ready(tmp_path_factory):
    cluster = LocalCluster(2, base_dir=tmp_path_factory.mktemp("ready"), members=1)
    try:
        cluster.start_members()
        outsider = cluster.nodes[1]
        cluster.start_node(outsider)
        cluster.wait_until(lambda: cluster.try_status(outsider), 30, "serving")
        live = requests.get(outsider.base_url + "/api/health/live", timeout=10)
        assert live.status_code == 200
        ready = requests.get(outsider.base_url + "/api/health/ready", timeout=10)
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"] == "not_ready"
        assert "not a member" in ready.json()["detail"]
        assert ready.headers["Retry-After"] == "1"
    finally:
        cluster.close()


def test_metrics_move_as_commands_commit(shared_cluster):
    cluster = shared_cluster
    leader = cluster.leader()
    followers = cluster.others(leader)
    before = scrape(leader)
    assert value(before, "raft_role", role="leader") == 1
    assert value(before, "raft_role", role="follower") == 0
    last = None
    for n in range(5):
        last = cluster.write(leader, f"metrics-{n}")
    cluster.wait_applied(last["index"], cluster.nodes)
    after = scrape(leader)
    assert value(after, "raft_commit_index") >= value(before, "raft_commit_index") + 5
    assert value(after, "raft_applied_index") >= last["index"]
    assert value(after, "raft_term") == last["term"]
    assert (
        value(after, "raft_proposals_committed_total")
        >= value(before, "raft_proposals_committed_total") + 5
    )
    assert value(after, "raft_storage_save_seconds_count") > value(
        before, "raft_storage_save_seconds_count"
    )
    assert value(after, "raft_apply_transaction_seconds_count") > 0
    for follower in followers:
        peer = follower.address
        assert value(after, "raft_follower_match_index", peer=peer) >= 0
        assert value(after, "raft_peer_rpc_seconds_count", peer=peer) > 0
    assert value(after, "raft_loop_batch_items_count") > 0
    follower_view = scrape(followers[0])
    assert value(follower_view, "raft_role", role="follower") == 1
    assert value(follower_view, "raft_leader_changes_total") >= 1
