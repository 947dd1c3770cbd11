"""Issue 10's attacks on a fresh 3-node cluster with the default settings:
malformed /raft/ bodies once stopped nodes and left every node at term
2^63 - 1, and a lone surrogate in source got a 500. Each is now refused
with 400, and every node keeps serving."""

import json
import time

import pytest

from consensus.validation import MAX_PEER_INT

from .conftest import running_cluster

pytestmark = pytest.mark.cluster

FAKE_LEADER = "127.0.0.1:1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, "malformed") as cluster:
        yield cluster


def append_entries(dest, term, entries, prev_log_index=0, prev_log_term=0, **more):
    return {
        "term": term,
        "source": FAKE_LEADER,
        "dest": dest,
        "prev_log_index": prev_log_index,
        "prev_log_term": prev_log_term,
        "entries": entries,
        "leader_commit": 0,
        **more,
    }


def entry(index, term, command="x", type="command", **more):
    return {"index": index, "term": term, "type": type, "command": command, **more}


def attacks(dest, term):
    """(endpoint, JSON text) of each attack the issue lists."""
    big = 2**63 - 1
    vote = {
        "term": big,
        "source": FAKE_LEADER,
        "dest": dest,
        "last_log_index": 10**9,
        "last_log_term": big,
    }
    bodies = [
        # Entries that do not follow on.
        ("append_entries", append_entries(dest, term + 1, [entry(99, term + 1)])),
        # A config entry whose command is no configuration.
        (
            "append_entries",
            append_entries(
                dest, term + 1, [entry(1, term + 1, "not a config", type="config")]
            ),
        ),
        # Terms of 2^63 - 1 and seq of 2^63.
        ("request_vote", vote),
        ("append_entries", append_entries(dest, big, [])),
        (
            "append_entries",
            append_entries(
                dest, term + 1, [entry(1, term + 1, client_id="c", seq=2**63)]
            ),
        ),
    ]
    texts = [(endpoint, json.dumps(body)) for endpoint, body in bodies]
    # A lone surrogate in source, and in a command.
    texts.append(
        ("request_vote", json.dumps(vote | {"term": term + 1, "source": "\ud800:1"}))
    )
    texts.append(
        (
            "append_entries",
            json.dumps(append_entries(dest, term + 1, [entry(1, term + 1, "\udc00")])),
        )
    )
    return texts


def post(cluster, node, endpoint, text):
    return cluster.http.post(
        f"{node.base_url}/raft/{endpoint}",
        data=text.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
        timeout=(1.0, 5.0),
    )


def assert_all_serving(cluster):
    for node in cluster.nodes:
        assert node.running, f"{node.address} stopped\n{cluster.describe()}"
        status = cluster.status(node)
        assert status["term"] < MAX_PEER_INT


def test_each_attack_is_refused_and_every_node_keeps_serving(cluster):
    for node in cluster.nodes:
        term = cluster.status(node)["term"]
        for endpoint, text in attacks(node.address, term):
            response = post(cluster, node, endpoint, text)
            assert response.status_code == 400, (endpoint, text, response.text)
            assert response.json()["error"] == "bad_request"
    time.sleep(1.0)  # any late failure on the loop thread shows by now
    assert_all_serving(cluster)
    leader = cluster.leader()
    cluster.write(leader, "after the attacks")


def test_a_forged_commit_the_real_leader_contradicts_stops_no_node(cluster):
    """A forged AppendEntries of a newer term appends and commits an entry
    on a follower; the real leader's next AppendEntries contradicts that
    committed entry. That raised RuntimeError in log.py and stopped the
    follower, again after every restart: now it is refused with a reply."""
    leader = cluster.leader()
    index = cluster.write(leader, "before the forgery")["index"]
    cluster.wait_applied(index)
    victim = cluster.others(leader)[0]
    status = cluster.status(victim)
    last = status["last_log_index"]
    (held,) = [e for e in cluster.log(victim, start=last) if e["index"] == last]
    term = status["term"] + 1
    forged = append_entries(
        victim.address,
        term,
        [entry(last + 1, term, "forged")],
        prev_log_index=last,
        prev_log_term=held["term"],
        leader_commit=last + 1,
    )
    response = post(cluster, victim, "append_entries", json.dumps(forged))
    assert response.status_code == 200 and response.json()["success"] is True
    # The cluster elects a leader again, whose log contradicts the forgery.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert victim.running, f"the follower stopped\n{cluster.describe()}"
        time.sleep(0.2)
    assert_all_serving(cluster)
    cluster.restart(victim)
    cluster.wait_until(lambda: cluster.try_status(victim), 20, "the victim serving")
    time.sleep(2.0)
    assert_all_serving(cluster)
