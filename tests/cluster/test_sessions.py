"""Client sessions end (README, Client sessions): on a cluster whose TTL is
3 s, a retry of a pair after its session ended gets 409 conflict from any
node and is never applied."""

import time

import pytest

from .conftest import running_cluster

pytestmark = pytest.mark.cluster

TTL_S = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {"RAFT_SESSION_TTL_S": str(TTL_S)}
    with running_cluster(tmp_path_factory, "sessions", env=env) as cluster:
        yield cluster


def test_a_retry_after_the_session_ended_is_409_and_never_applied(cluster):
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    first = cluster.write(leader, "sessions: first", client_id="c", seq=1)
    # Within the session: the first answer, from any node.
    again = cluster.write(follower, "sessions: first", client_id="c", seq=1)
    assert (again["index"], again["term"]) == (first["index"], first["term"])
    # The session clock moves only with the log: another client's command,
    # more than one TTL (and less than two) after c's.
    time.sleep(TTL_S + 0.5)
    cluster.write(leader, "sessions: other", client_id="d", seq=1)
    for node in (leader, follower):
        response = cluster.submit(node, "sessions: first", client_id="c", seq=1)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "conflict"
        assert "has ended" in body["detail"] and "not applied" in body["detail"]
    # A new seq of the same client starts a new session.
    cluster.write(follower, "sessions: second", client_id="c", seq=2)
    count = cluster.write(leader, "count")
    cluster.wait_applied(count["index"])
    for node in cluster.nodes:
        cluster.wait_until(
            lambda node=node: "Count 4" in cluster.events(node), 5, f"Count 4 on {node}"
        )
    commands = [e["command"] for e in cluster.log(leader) if e["type"] == "command"]
    assert commands.count("sessions: first") == 1
