"""The key-value store against a real cluster (issue 12; CONTRACT.md
"Key-value store"): writes through any server, compare-and-set, reads at
each consistency level on every server, listing and watches."""

import threading
import uuid
from urllib.parse import quote

import pytest
import requests

from .conftest import running_cluster

pytestmark = pytest.mark.cluster


def kv(cluster, node, method, key, timeout=15, **kw):
    url = cluster.node(node).base_url + "/api/kv/" + quote(key, safe="")
    return requests.request(method, url, timeout=timeout, **kw)


def fresh(name: str) -> str:
    return f"{name}/{uuid.uuid4().hex[:8]}"


def test_put_through_a_follower_then_read_it_everywhere(shared_cluster):
    cluster = shared_cluster
    follower = cluster.others(cluster.leader())[0]
    key = fresh("config/ä ö")
    r = kv(cluster, follower, "PUT", key, json={"value": "v1"})
    assert r.status_code == 200, r.text
    put = r.json()
    assert put["forwarded"] is True and put["key"] == key and put["value"] == "v1"
    for node in cluster.nodes:
        for consistency in ("linearizable", "leader"):
            r = kv(cluster, node, "GET", key, params={"consistency": consistency})
            assert r.status_code == 200, (node.address, consistency, r.text)
            body = r.json()
            assert (body["value"], body["revision"]) == ("v1", put["revision"])
            assert body["applied_index"] >= put["revision"]
    # Linearizable (the default) on a follower: right after the write.
    r = kv(cluster, follower, "PUT", key, json={"value": "v2"})
    revision = r.json()["revision"]
    for node in cluster.nodes:
        body = kv(cluster, node, "GET", key).json()
        assert (body["value"], body["revision"]) == ("v2", revision), node.address
    stale = kv(cluster, follower, "GET", key, params={"consistency": "stale"})
    assert stale.status_code == 200 and "applied_index" in stale.json()


def test_compare_and_set_and_delete(shared_cluster):
    cluster = shared_cluster
    leader = cluster.leader()
    key = fresh("lock")
    created = kv(cluster, leader, "PUT", key, json={"value": "a", "prev_revision": 0})
    assert created.status_code == 200, created.text
    rev = created.json()["revision"]
    again = kv(cluster, leader, "PUT", key, json={"value": "b", "prev_revision": 0})
    assert again.status_code == 412, again.text
    assert again.json()["error"] == "precondition_failed"
    assert again.json()["current_revision"] == rev
    swapped = kv(cluster, leader, "PUT", key, json={"value": "b", "prev_revision": rev})
    assert swapped.status_code == 200 and swapped.json()["revision"] > rev
    stale_delete = kv(cluster, leader, "DELETE", key, params={"prev_revision": rev})
    assert stale_delete.status_code == 412, stale_delete.text
    gone = kv(cluster, cluster.others(leader)[0], "DELETE", key)
    assert gone.status_code == 200, gone.text
    assert gone.json()["revision"] > swapped.json()["revision"]
    assert kv(cluster, leader, "GET", key).status_code == 404
    assert kv(cluster, leader, "DELETE", key).status_code == 404


def test_a_retried_write_applies_once(shared_cluster):
    cluster = shared_cluster
    key = fresh("once")
    body = {"value": "x", "client_id": f"c-{uuid.uuid4().hex}", "seq": 1}
    first = kv(cluster, cluster.leader(), "PUT", key, json=body).json()
    second = kv(cluster, cluster.leader(), "PUT", key, json=body).json()
    assert first["revision"] == second["revision"]


@pytest.mark.parametrize(
    "key, body, status",
    [
        ("k", {}, 400),
        ("k", {"value": 5}, 400),
        ("k", {"value": "v", "prev_revision": -1}, 400),
        ("k" * 513, {"value": "v"}, 400),
        ("k", {"value": "v" * (64 * 1024 + 1)}, 413),
    ],
)
def test_bad_writes_are_refused(shared_cluster, key, body, status):
    r = kv(shared_cluster, shared_cluster.leader(), "PUT", key, json=body)
    assert r.status_code == status, r.text


def test_list_pages_in_byte_order(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("list") + "/"
    names = ["b", "a", "é", "a/x", "c"]
    for name in names:
        r = kv(cluster, cluster.leader(), "PUT", prefix + name, json={"value": name})
        assert r.status_code == 200
    url = cluster.node(cluster.others(cluster.leader())[0]).base_url + "/api/kv"
    seen, after = [], None
    while True:
        params = {"prefix": prefix, "limit": 2}
        if after:
            params["after"] = after
        page = requests.get(url, params=params, timeout=15).json()
        seen += [item["key"][len(prefix) :] for item in page["items"]]
        if not page["more"]:
            break
        after = page["items"][-1]["key"]
    assert seen == sorted(names, key=lambda n: n.encode())


def test_a_watch_answers_as_soon_as_a_change_exists(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("watch") + "/"
    watcher = cluster.others(cluster.leader())[1]
    start = kv(cluster, cluster.leader(), "PUT", prefix + "before", json={"value": "0"})
    after = start.json()["revision"]
    url = cluster.node(watcher).base_url + "/api/watch"
    answers = []
    thread = threading.Thread(
        target=lambda: answers.append(
            requests.get(url, params={"prefix": prefix, "after": after,
                                      "timeout": 20}, timeout=30)  # fmt: skip
        )
    )
    thread.start()
    put = kv(cluster, cluster.leader(), "PUT", prefix + "k", json={"value": "1"})
    thread.join(timeout=30)
    assert answers and answers[0].status_code == 200, answers
    body = answers[0].json()
    assert [(e["type"], e["key"], e["value"]) for e in body["events"]] == [
        ("put", prefix + "k", "1")
    ]
    assert body["events"][0]["revision"] == put.json()["revision"]
    assert body["revision"] >= put.json()["revision"]
    # Nothing new: an empty answer at the timeout, covering up to now.
    quiet = requests.get(
        url, params={"prefix": prefix, "after": body["revision"], "timeout": 0.5},
        timeout=10,
    ).json()  # fmt: skip
    assert quiet["events"] == [] and quiet["revision"] >= body["revision"]


def test_a_watch_older_than_the_history_is_410(tmp_path_factory):
    env = {"RAFT_KV_HISTORY_ENTRIES": "5"}
    with running_cluster(tmp_path_factory, "kvhistory", size=1, env=env) as cluster:
        node = cluster.nodes[0]
        for n in range(10):
            assert kv(cluster, node, "PUT", f"h{n}", json={"value": "v"}).ok
        url = node.base_url + "/api/watch"
        old = requests.get(url, params={"after": 1, "timeout": 0}, timeout=10)
        assert old.status_code == 410, old.text
        assert old.json()["error"] == "compacted"
        recent = requests.get(url, params={"after": 9, "timeout": 0}, timeout=10)
        assert recent.status_code == 200
        assert [e["key"] for e in recent.json()["events"]][-1] == "h9"
