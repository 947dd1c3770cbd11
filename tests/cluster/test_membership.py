"""Membership changes on real processes: add, remove, transfer, restart.

One cluster for the module: nodes 0-2 form it, nodes 3 and 4 start as
non-members. The tests run in order and each starts from the configuration
the previous one left (they still work out the members themselves).
"""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .harness import LocalCluster, free_ports, manage, one_line_failure

pytestmark = pytest.mark.cluster

INITIAL = 3
# Short, so the failed catch-up test stays quick (the default is 30 s).
CATCHUP_TIMEOUT_S = 3
# An election timeout is 10-20 ticks of 50 ms (at most 1 s).
QUIET_S = 1.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Nodes 0-2 form the cluster; nodes 3 and 4 start as non-members."""
    env = {"RAFT_CATCHUP_TIMEOUT_S": str(CATCHUP_TIMEOUT_S)}
    base_dir = tmp_path_factory.mktemp("members")
    cluster = LocalCluster(5, base_dir=base_dir, env=env, members=INITIAL)
    try:
        yield cluster.start_members()
    finally:
        cluster.close()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configuration(cluster, node) -> dict[str, bool]:
    """address -> voter, from the node's GET /api/servers."""
    body = cluster.get(node, "/api/servers").json()
    return {s["id"]: s["voter"] for s in body["servers"]}


def agreed_leader(cluster, members):
    """The leader every member agrees on (same term), or None."""
    statuses = [cluster.try_status(n) for n in members]
    if None in statuses:
        return None
    leaders = {s["id"] for s in statuses if s["role"] == "leader"}
    if len(leaders) != 1:
        return None
    leader = leaders.pop()
    if (
        any(s["leader"] != leader for s in statuses)
        or len({s["term"] for s in statuses}) != 1
    ):
        return None
    return cluster.node(leader)


def leader_of(cluster, members, timeout=10.0):
    return cluster.wait_until(
        lambda: agreed_leader(cluster, members), timeout, "leader"
    )


def current_members(cluster):
    """The running voters, according to whichever node leads them now."""
    for node in cluster.live_nodes():
        status = cluster.try_status(node)
        if status and status["role"] == "leader":
            voters = [a for a, v in configuration(cluster, node).items() if v]
            return [cluster.node(a) for a in voters]
    raise AssertionError(f"no leader\n{cluster.describe()}")


def wait_event(cluster, nodes, line, timeout=10.0):
    cluster.wait_until(
        lambda: all(line in cluster.events(n) for n in nodes),
        timeout,
        f"{line!r} printed by {[n.address for n in nodes]}",
    )


def holds_for(seconds, predicate, interval=0.1):
    """Assert ``predicate()`` stays true for ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate()
        time.sleep(interval)


def test_server_outside_the_cluster_waits_as_a_non_member(cluster):
    leader = leader_of(cluster, cluster.nodes[:INITIAL])
    term = cluster.status(leader)["term"]
    newcomer = cluster.start_node(3)
    cluster.wait_until(lambda: cluster.try_status(newcomer), 20, "newcomer serving")

    def waiting():
        status = cluster.status(newcomer)
        return (status["role"], status["term"], status["servers"]) == ("none", 0, [])

    holds_for(QUIET_S, waiting)
    assert cluster.status(leader)["term"] == term
    assert newcomer.address not in configuration(cluster, leader)


def test_add_a_fourth_server_it_catches_up_then_votes(cluster):
    members = cluster.nodes[:INITIAL]
    leader = leader_of(cluster, members)
    with ThreadPoolExecutor(16) as pool:
        written = list(
            pool.map(lambda i: cluster.write(leader, f"entry-{i}"), range(1000))
        )
    last = max(w["index"] for w in written)
    newcomer = cluster.node(3)
    follower = next(n for n in members if n is not leader)

    r = cluster.post(
        follower, "/api/servers", {"address": f":{newcomer.port}"}, timeout=(1, 30)
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["forwarded"] is True and answer["index"] > last
    assert {"id": newcomer.address, "voter": True} in answer["servers"]

    # Dissertation §4.2.1: first a learner, then (caught up) a voter.
    configs = [e for e in cluster.log(leader) if e["type"] == "config"]
    assert newcomer.address in configs[-2]["command"]
    assert f'"learners":["{newcomer.address}"]' in configs[-2]["command"]
    assert configs[-1]["index"] == answer["index"]
    assert '"learners":[]' in configs[-1]["command"]
    members = [*members, newcomer]
    cluster.wait_applied(answer["index"], members)
    assert cluster.log(newcomer)[:last] == cluster.log(leader)[:last]
    wait_event(cluster, members, f"Added new peer {newcomer.address}")
    for node in members:
        assert configuration(cluster, node)[newcomer.address] is True

    # It votes: with one original follower paused, a write still needs it.
    cluster.pause(follower)
    try:
        assert cluster.write(leader, unique("needs-the-newcomer"))["index"] > 0
    finally:
        cluster.resume(follower)


def test_adding_a_server_that_is_not_running_fails_and_changes_nothing(cluster):
    members = current_members(cluster)
    leader = leader_of(cluster, members)
    before = configuration(cluster, leader)
    absent = f"127.0.0.1:{free_ports(1)[0]}"
    result = {}
    adding = threading.Thread(
        target=lambda: result.update(
            cli=manage("addserver", absent, "-S", leader.address)
        )
    )
    adding.start()
    try:
        # While it tries to catch up, a second change is refused (§4.1).
        cluster.wait_until(
            lambda: absent in configuration(cluster, leader), 5, "learner appended"
        )
        assert configuration(cluster, leader)[absent] is False
        r = cluster.http.delete(f"{leader.base_url}/api/servers/{members[-1].address}")
        assert r.status_code == 409 and r.json()["error"] == "conflict", r.text
    finally:
        adding.join()
    line = one_line_failure(result["cli"])
    assert "422 catchup_failed" in line, line
    # The leader answers once the configuration without the learner is
    # committed; a follower outside that majority learns it a heartbeat later.
    for node in members:
        cluster.wait_until(
            lambda node=node: configuration(cluster, node) == before,
            5,
            f"{node.address} back to the configuration before",
        )


def test_remove_a_follower(cluster):
    members = current_members(cluster)
    leader = leader_of(cluster, members)
    follower = next(n for n in members if n is not leader and n.index < INITIAL)
    result = manage("removeserver", f":{follower.port}", "-S", leader.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"Removed {follower.address}: configuration committed"
    )
    assert "(not forwarded)" in result.stdout
    remaining = [n for n in members if n is not follower]
    wait_event(cluster, remaining, f"Removed peer {follower.address}")
    for node in remaining:
        assert follower.address not in configuration(cluster, node)
    cluster.removed = [follower]  # left running, for the test below


def test_remove_the_leader_while_a_client_writes(cluster):
    members = current_members(cluster)
    old = leader_of(cluster, members)
    remaining = [n for n in members if n is not old]
    outcomes = []  # (time, status) of each write
    stop = threading.Event()

    def write():
        session = requests.Session()
        for i in range(100_000):
            node = remaining[i % len(remaining)]
            try:
                r = session.post(
                    f"{node.base_url}/api/commands",
                    json={"command": unique("during-removal")},
                    timeout=(0.5, 5),
                )
                outcomes.append((time.monotonic(), r.status_code))
            except requests.RequestException:
                outcomes.append((time.monotonic(), None))
            if stop.is_set():
                return

    writer = threading.Thread(target=write)
    writer.start()
    try:
        cluster.wait_until(lambda: len(outcomes) >= 20, 10, "writes before")
        asked = time.monotonic()
        r = cluster.http.delete(
            f"{old.base_url}/api/servers/{old.address}", timeout=(1, 30)
        )
        assert r.status_code == 200, r.text
        # Leadership was handed over first, so the removal ran on the new leader.
        assert r.json()["forwarded"] is True and r.json()["leader"] != old.address
        new = leader_of(cluster, remaining, timeout=5)
        assert time.monotonic() - asked < 5.0
        done = time.monotonic()
        cluster.wait_until(
            lambda: sum(1 for t, s in outcomes if t > done and s == 200) >= 20,
            10,
            "writes go on after the removal",
        )
    finally:
        stop.set()
        writer.join()
    assert new is not old
    # 503: refused during the hand-over; 504: was waiting at the old leader,
    # which may never learn the commit once it is out of the configuration.
    assert {s for t, s in outcomes} <= {200, 503, 504}, outcomes
    wait_event(cluster, remaining, f"Removed peer {old.address}")
    assert old.address not in configuration(cluster, new)
    cluster.removed.append(old)


def test_removed_servers_left_running_do_not_raise_the_term(cluster):
    members = current_members(cluster)
    leader = leader_of(cluster, members)
    term = cluster.status(leader)["term"]
    assert all(n.running() for n in cluster.removed)

    def undisturbed():
        return agreed_leader(cluster, members) is leader and all(
            cluster.status(n)["term"] == term for n in members
        )

    holds_for(2.5, undisturbed)
    assert cluster.write(leader, unique("after-quiet"))["term"] == term


def test_transferleader_to_a_named_server(cluster):
    members = current_members(cluster)
    leader = leader_of(cluster, members)
    target = next(n for n in members if n is not leader)
    # Asked of the target itself: a follower, so it forwards to the leader.
    result = manage("transferleader", "--to", f":{target.port}", "-S", target.address)
    assert result.returncode == 0, result.stderr
    assert f"Leadership is now with {target.address}" in result.stdout
    assert "forwarded the request" in result.stdout
    assert leader_of(cluster, members) is target


# The admin login lives in the accounts database (raftsite/routers.py).
@pytest.mark.django_db(databases=["default", "accounts"])
def test_admin_add_form_and_remove_action(cluster, admin_client, settings):
    """Uses only node 4 besides the members, so it does not mind that
    pytest-django runs it first (tests using the database go first)."""
    members = current_members(cluster)
    follower = next(n for n in members if agreed_leader(cluster, members) is not n)
    settings.RAFT_NODE_ID = follower.address  # the admin of a follower
    page = admin_client.get("/admin/nodes/server/")
    assert page.status_code == 200
    text = page.content.decode()
    for node in members:
        assert node.address in text
    assert "voter" in text and "s ago" in text  # the leader's view

    spare = cluster.start_node(4)
    cluster.wait_until(lambda: cluster.try_status(spare), 20, "spare serving")
    page = admin_client.post(
        "/admin/nodes/server/add/", {"address": f":{spare.port}"}, follow=True
    )
    [message] = [str(m) for m in page.context["messages"]]
    assert message.startswith(
        f"Added {spare.address}: configuration committed"
    ), message
    # Committed by a majority that need not include this follower (§4.1):
    # it appends the entry a heartbeat later.
    wait_event(cluster, [follower], f"Added new peer {spare.address}")
    assert configuration(cluster, follower)[spare.address] is True

    page = admin_client.post(
        f"/admin/nodes/server/{spare.address}/remove/", follow=True
    )
    [message] = [str(m) for m in page.context["messages"]]
    assert message.startswith(
        f"Removed {spare.address}: configuration committed"
    ), message
    wait_event(cluster, [follower], f"Removed peer {spare.address}")
    assert spare.address not in configuration(cluster, follower)

    page = admin_client.post(
        f"/admin/nodes/server/{spare.address}/remove/", follow=True
    )
    [message] = [str(m) for m in page.context["messages"]]
    assert "404 not_found" in message and "not a member" in message
    cluster.stop(spare)


def test_restart_every_server_keeps_the_configuration(cluster):
    members = current_members(cluster)
    before = {n.address: configuration(cluster, n) for n in members}
    with ThreadPoolExecutor(len(members)) as pool:
        assert all(pool.map(cluster.stop, members))  # SIGTERM, all at once
    for node in members:
        cluster.start_node(node)
    # The persisted configuration shows before any election.
    for node in members:
        cluster.wait_until(
            lambda node=node: cluster.try_status(node), 20, "serving again"
        )
        assert configuration(cluster, node) == before[node.address]
    leader = leader_of(cluster, members, timeout=20)
    assert cluster.write(leader, unique("after-restart"))["index"] > 0
    assert {n.address: configuration(cluster, n) for n in members} == before
