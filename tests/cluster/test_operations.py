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


def test_client_latency_and_key_reads_by_consistency_move(shared_cluster):
    """raft_client_request_seconds counts client requests by method, route
    template and status class (never a key, never peer RPC), and
    raft_kv_reads_total each read this node answered, by consistency."""
    cluster = shared_cluster
    leader = cluster.leader()
    url = leader.base_url + "/api/kv/metrics/secret-key"
    put = ("PUT", "/api/kv/{key}", "2xx")
    get = ("GET", "/api/kv/{key}", "2xx")

    def latency(samples, method, route, status):
        return value(
            samples, "raft_client_request_seconds_count",
            method=method, route=route, status=status,
        ) or 0  # fmt: skip

    def reads(samples, level):
        return value(samples, "raft_kv_reads_total", consistency=level) or 0

    before = scrape(leader)
    answer = requests.put(url, json={"value": "v"}, timeout=10)
    assert answer.status_code == 200, answer.text
    for level, times in (("linearizable", 2), ("leader", 1), ("stale", 3)):
        for _ in range(times):
            r = requests.get(url, params={"consistency": level}, timeout=10)
            assert r.status_code == 200, r.text
    missing = requests.get(url + "-absent", timeout=10)
    assert missing.status_code == 404
    after = scrape(leader)
    assert latency(after, *put) >= latency(before, *put) + 1
    assert latency(after, *get) >= latency(before, *get) + 6
    assert latency(after, "GET", "/api/kv/{key}", "4xx") >= 1
    put_sum = value(
        after, "raft_client_request_seconds_sum",
        method="PUT", route="/api/kv/{key}", status="2xx",
    )  # fmt: skip
    assert put_sum > 0
    for level, times in (("linearizable", 2), ("leader", 1), ("stale", 3)):
        assert reads(after, level) >= reads(before, level) + times, level
    routes = {
        dict(labels).get("route")
        for name, labels in after
        if name.startswith("raft_client_request_seconds")
    }
    assert not [r for r in routes if "secret" in r or r.startswith("/raft/")], routes
