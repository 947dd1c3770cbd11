"""End to end through the client API on one shared 3-node cluster.

The tests leave every node running; the print/count test runs before the
retry test, whose concurrent repeats may put a duplicate entry in the log.
"""

import threading
import uuid

import pytest
import requests

pytestmark = pytest.mark.cluster

STATUS_KEYS = {
    "id", "role", "term", "leader", "commit_index", "last_applied",
    "last_log_index", "servers",
}  # fmt: skip


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def follower_of(cluster):
    leader = cluster.leader()
    return leader, cluster.others(leader)[0]


def test_status_reports_roles_and_full_addresses(shared_cluster):
    """/api/status on every node: one leader, two followers, full addresses."""
    leader = shared_cluster.leader()
    addresses = sorted(n.address for n in shared_cluster.nodes)
    roles = []
    for node in shared_cluster.nodes:
        status = shared_cluster.status(node)
        assert STATUS_KEYS <= set(status), status
        assert status["id"] == node.address
        assert status["leader"] == leader.address
        assert sorted(s["id"] for s in status["servers"]) == addresses
        assert all(s["voter"] for s in status["servers"])
        assert (
            status["last_applied"] <= status["commit_index"] <= status["last_log_index"]
        )
        roles.append(status["role"])
    assert sorted(roles) == ["follower", "follower", "leader"]
    line = f"Became leader for term {shared_cluster.status(leader)['term']}"
    shared_cluster.wait_until(lambda: line in shared_cluster.events(leader), 5, line)


def test_command_to_follower_is_forwarded_and_replicated(shared_cluster):
    """A follower forwards a write to the leader; all three logs hold it."""
    cluster = shared_cluster
    leader, follower = follower_of(cluster)
    command = unique("forwarded")
    answer = cluster.write(follower, command)
    assert answer["forwarded"] is True
    assert answer["leader"] == leader.address
    direct = cluster.write(leader, unique("direct"))
    assert direct["forwarded"] is False
    assert direct["index"] > answer["index"]

    def entry_on(node):
        entries = cluster.log(node, start=answer["index"])
        return entries and entries[0]

    for node in cluster.nodes:
        entry = cluster.wait_until(
            lambda node=node: entry_on(node),
            5,
            f"entry {answer['index']} on {node.address}",
        )
        assert entry == {
            "index": answer["index"],
            "term": answer["term"],
            "type": "command",
            "command": command,
        }


def test_log_endpoint_pages_committed_entries(shared_cluster):
    """/api/log honours from/limit and returns only committed entries."""
    cluster = shared_cluster
    leader = cluster.leader()
    for i in range(3):
        cluster.write(leader, unique(f"page{i}"))
    page = cluster.get(leader, "/api/log", limit=2, **{"from": 2}).json()
    assert page["first_index"] == 1
    assert [e["index"] for e in page["entries"]] == [2, 3]
    everything = cluster.get(leader, "/api/log", limit=1000).json()
    assert everything["entries"][-1]["index"] <= everything["commit_index"]
    assert [e["index"] for e in everything["entries"]] == list(
        range(1, len(everything["entries"]) + 1)
    )


def test_errors_through_leader_and_follower(shared_cluster):
    """Malformed, oversized and misrouted requests get the contract's error
    codes, whether the leader or a follower answers, and append nothing."""
    cluster = shared_cluster
    leader, follower = follower_of(cluster)
    before = cluster.status(leader)["commit_index"]
    too_large = "x" * (64 * 1024 + 1)
    for node in (leader, follower):
        r = cluster.post(node, "/api/commands", {"not_command": "x"})
        assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text
        r = cluster.post(node, "/api/commands", {"command": too_large})
        assert (r.status_code, r.json()["error"]) == (413, "too_large"), r.text[:200]
        r = cluster.get(node, "/api/no-such-route")
        assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text[:200]
    # Nothing appended (a new leader's no-op entry aside).
    later = cluster.log(leader, start=before + 1)
    assert [e for e in later if e["type"] != "noop"] == [], later


def test_answers_any_host_name(shared_cluster):
    """A node answers requests addressed to any name it serves on."""
    cluster = shared_cluster
    node = cluster.nodes[0]
    for host in (f"localhost:{node.port}", f"127.0.0.1:{node.port}", "example.invalid"):
        r = cluster.get(node, "/api/status", headers={"Host": host})
        assert r.status_code == 200, (host, r.status_code)
        assert r.json()["id"] == node.address


def expected_outputs(entries, upto):
    """(client messages applied up to index ``upto``) from a committed log."""
    return [
        e["command"] for e in entries if e["type"] == "command" and e["index"] <= upto
    ]


def test_print_and_count_once_on_every_node(shared_cluster):
    """Each node prints `Logs [...]` and `Count N` once per command."""
    cluster = shared_cluster
    leader, follower = follower_of(cluster)
    cluster.write(leader, f"I like beer. {unique('pc')}")
    count_index = cluster.write(follower, "count")["index"]
    print_index = cluster.write(leader, "print")["index"]
    entries = cluster.log(leader)
    messages = expected_outputs(entries, print_index)
    assert messages[-1] == "print"
    count_line = f"Count {len(expected_outputs(entries, count_index))}"
    logs_line = f"Logs [{' '.join(messages)}]"
    # One more write applied everywhere: any repeat would have shown by then.
    cluster.wait_applied(cluster.write(leader, unique("after"))["index"], cluster.nodes)
    for node in cluster.nodes:
        events = cluster.wait_until(
            lambda node=node: (ev := cluster.events(node)) and logs_line in ev and ev,
            5,
            f"{logs_line!r} on {node.address}",
        )
        assert events.count(count_line) == 1, (node.address, count_line)
        assert events.count(logs_line) == 1, node.address


def test_retries_with_same_client_id_and_seq_apply_once(shared_cluster):
    """A repeated (client_id, seq) gets the first answer and applies once,
    sequential or concurrent, direct or forwarded."""
    cluster = shared_cluster
    leader, follower = follower_of(cluster)
    client_id = unique("client")
    first_command = unique("once")
    first = cluster.write(leader, first_command, client_id=client_id, seq=1)
    again = cluster.write(leader, first_command, client_id=client_id, seq=1)
    forwarded = cluster.write(follower, first_command, client_id=client_id, seq=1)
    assert (again["index"], again["term"]) == (first["index"], first["term"])
    assert (forwarded["index"], forwarded["term"]) == (first["index"], first["term"])
    second = cluster.write(leader, unique("next"), client_id=client_id, seq=2)
    assert second["index"] > first["index"]

    # The same pair sent to all three nodes at once.
    racing_command = unique("race")
    answers, errors = [], []

    def send(node):
        # A session per thread: requests.Session is not thread-safe.
        body = {"command": racing_command, "client_id": client_id, "seq": 3}
        try:
            r = requests.post(f"{node.base_url}/api/commands", json=body, timeout=10)
            assert r.status_code == 200, (node.address, r.status_code, r.text)
            answers.append(r.json())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in cluster.nodes * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({(a["index"], a["term"]) for a in answers}) == 1, answers

    cluster.write(leader, "print")

    def last_print_with_race(node):
        lines = [e for e in cluster.events(node) if e.startswith("Logs [")]
        return lines and racing_command in lines[-1] and lines[-1]

    for node in cluster.nodes:
        line = cluster.wait_until(
            lambda node=node: last_print_with_race(node),
            5,
            f"Logs line on {node.address}",
        )
        for command in (first_command, racing_command):
            assert line.count(command) == 1, (node.address, command, line[-300:])
