"""Client tokens and permissions against a real cluster with RAFT_AUTH=required
(issue 10 item 3; CONTRACT.md, Security settings): users and tokens made once,
through the log, valid on every server (one added later, from a snapshot,
included), only digests stored, read/write/admin enforced with 401 and 403,
forwarding that keeps the caller, and membership changes that record who
asked."""

import re
import sqlite3
import uuid

import pytest
import requests

from raftclient import Client, Forbidden, Unauthorized

from .harness import LocalCluster, manage, one_line_failure, wait_until

pytestmark = pytest.mark.cluster

ENV = {
    "RAFT_AUTH": "required",
    "RAFT_CLUSTER_SECRET": f"secret-{uuid.uuid4().hex}",
    # Small, so that the server added later catches up by snapshot.
    "RAFT_SNAPSHOT_ENTRIES": "20",
    "RAFT_SNAPSHOT_TRAILING": "5",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("tokens")
    cluster = LocalCluster(4, base_dir=base, env=ENV, members=3)
    try:
        cluster.start_members()
        yield cluster
    finally:
        cluster.close()


def createtoken(cluster, node, username, permissions, token=None):
    args = [
        "createtoken",
        "--username",
        username,
        "--permissions",
        permissions,
        "-S",
        cluster.node(node).address,
    ]
    if token:
        args += ["--token", token]
    return manage(*args)


@pytest.fixture(scope="module")
def tokens(cluster):
    """The first admin (no token: from this machine, while there is no
    admin), then a writer and a reader made with the admin's token, each
    asked of a follower."""
    follower = cluster.others(cluster.leader())[0]
    made = createtoken(cluster, follower, "root", "read,write,admin")
    assert made.returncode == 0, one_line_failure(made)
    admin = made.stdout.strip().splitlines()[-1]
    # A server knows a token once it has applied it; committed, it may
    # still be a heartbeat away from a server outside the majority (the
    # follower asked included). So each token is used once all have it.
    known_everywhere(cluster, made)
    found = {"admin": admin}
    for name, permissions in (("writer", "write"), ("reader", "read")):
        made = createtoken(cluster, follower, name, permissions, token=admin)
        assert made.returncode == 0, one_line_failure(made)
        found[name] = made.stdout.strip().splitlines()[-1]
    known_everywhere(cluster, made)
    return found


def known_everywhere(cluster, made):
    """Wait until every running server applied the token createtoken made."""
    index = re.search(r" at index (\d+);", made.stdout)
    assert index, made.stdout
    cluster.wait_applied(int(index.group(1)))


def call(cluster, node, method, path, token=None, json=None):
    headers = {"Authorization": f"Token {token}"} if token else {}
    return requests.request(
        method,
        cluster.node(node).base_url + path,
        json=json,
        headers=headers,
        timeout=15,
    )


def test_status_is_open_and_the_rest_needs_a_token(cluster, tokens):
    for node in cluster.nodes[:3]:
        assert call(cluster, node, "GET", "/api/status").status_code == 200
        for method, path, body in (
            ("POST", "/api/commands", {"command": "anonymous"}),
            ("GET", "/api/log", None),
            ("GET", "/api/servers", None),
            ("POST", "/api/leader", {}),
            ("GET", "/api/users", None),
        ):
            r = call(cluster, node, method, path, json=body)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Token"
        bogus = "raft_000000000000_" + "x" * 43
        r = call(cluster, node, "GET", "/api/log", token=bogus)
        assert r.status_code == 401, r.text


def test_a_second_first_admin_is_refused(cluster, tokens):
    made = createtoken(cluster, cluster.leader(), "intruder", "admin")
    assert made.returncode != 0
    assert "401" in made.stderr and "admin token" in made.stderr, made.stderr


def test_permissions_are_enforced_on_every_server(cluster, tokens):
    leader = cluster.leader()
    for node in cluster.nodes[:3]:
        # The writer commits through a follower, which forwards it.
        r = call(cluster, node, "POST", "/api/commands", tokens["writer"],
                 {"command": f"by-writer-{node.port}"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["forwarded"] is (node != leader)
        r = call(cluster, node, "GET", "/api/log", tokens["writer"])
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert "lacks the read permission" in r.json()["detail"]

        r = call(cluster, node, "GET", "/api/log", tokens["reader"])
        assert r.status_code == 200, r.text
        r = call(cluster, node, "POST", "/api/commands", tokens["reader"],
                 {"command": "by-reader"})  # fmt: skip
        assert r.status_code == 403, r.text
        r = call(cluster, node, "POST", "/api/servers", tokens["reader"],
                 {"address": "127.0.0.1:1"})  # fmt: skip
        assert r.status_code == 403, r.text
    commands = [e["command"] for e in cluster_log(cluster, tokens)]
    assert "by-reader" not in commands
    assert sum(c.startswith("by-writer-") for c in commands) == 3


def cluster_log(cluster, tokens):
    r = call(cluster, cluster.leader(), "GET", "/api/log?limit=1000", tokens["admin"])
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_the_cli_takes_a_token(cluster, tokens):
    follower = cluster.others(cluster.leader())[0]
    args = ("clientcommand", "-m", "cli-with-token", "-S", follower.address)
    denied = manage(*args)
    assert denied.returncode != 0
    assert "401" in denied.stderr and "RAFT_TOKEN" in denied.stderr, denied.stderr
    done = manage(*args, "--token", tokens["writer"])
    assert done.returncode == 0, one_line_failure(done)
    assert "forwarded to leader" in done.stdout


def test_the_python_client_takes_a_token(cluster, tokens):
    servers = [node.address for node in cluster.nodes[:3]]
    key = f"token/{uuid.uuid4().hex}"
    with Client(servers, timeout=15) as anonymous:
        with pytest.raises(Unauthorized):
            anonymous.get(key)
    with Client(servers, token=tokens["reader"], timeout=15) as reader:
        with pytest.raises(Forbidden):
            reader.put(key, "x")
        with Client(servers, token=tokens["writer"], timeout=15) as writer:
            revision = writer.put(key, "x").revision
        assert reader.get(key).revision == revision
    failed = one_line_failure(manage("kv", "get", key, "-S", servers[0]))
    assert failed.endswith("Give --token or set RAFT_TOKEN."), failed


def test_only_digests_are_stored(cluster, tokens):
    for node in cluster.nodes[:3]:
        stored = b"".join(
            path.read_bytes() for path in node.data_dir.rglob("*") if path.is_file()
        )
        for token in tokens.values():
            assert token.encode() not in stored, node.address


def test_a_server_added_later_knows_every_token_and_the_change_records_who(
    cluster, tokens
):
    # Enough entries for a snapshot and compaction on every member.
    for n in range(30):
        r = call(cluster, cluster.leader(), "POST", "/api/commands",
                 tokens["writer"], {"command": f"fill-{n}"})  # fmt: skip
        assert r.status_code == 200, r.text
    newcomer = cluster.nodes[3]
    cluster.start_node(newcomer)
    follower = cluster.others(cluster.leader())[0]
    args = ("addserver", newcomer.address, "-S", follower.address, "--no-progress")
    added = manage(*args, "--token", tokens["admin"], timeout=90)
    assert added.returncode == 0, one_line_failure(added)
    assert any("Restored snapshot" in line for line in cluster.events(newcomer))

    r = call(cluster, newcomer, "GET", "/api/log", tokens["reader"])
    assert r.status_code == 200, r.text
    r = call(cluster, newcomer, "GET", "/api/log", tokens["writer"])
    assert r.status_code == 403, r.text

    # Who asked, on every server alike (the newcomer from its snapshot):
    # the admin, not the follower that forwarded the request.
    def recorded(node):
        with sqlite3.connect(node.data_dir / "db.sqlite3") as db:
            return db.execute(
                "SELECT requested_by, timestamp_ms FROM consensus_membershipchange"
                ' ORDER BY "index"'
            ).fetchall()

    wait_until(lambda: all(len(recorded(n)) == 2 for n in cluster.nodes),
               timeout=10, message="both changes applied everywhere")  # fmt: skip
    for node in cluster.nodes:
        assert [by for by, _ in recorded(node)] == ["root", "root"], node.address
        assert all(ms > 0 for _, ms in recorded(node))


def test_revoked_tokens_stop_working_everywhere(cluster, tokens):
    made = createtoken(cluster, cluster.leader(), "shortlived", "read", tokens["admin"])
    assert made.returncode == 0, one_line_failure(made)
    token = made.stdout.strip().splitlines()[-1]
    token_id = token.split("_")[1]
    follower = cluster.others(cluster.leader())[0]
    r = call(cluster, follower, "DELETE", f"/api/tokens/{token_id}", tokens["reader"])
    assert r.status_code == 403, r.text
    r = call(cluster, follower, "DELETE", f"/api/tokens/{token_id}", tokens["admin"])
    assert r.status_code == 200 and r.json()["forwarded"] is True, r.text
    index = r.json()["index"]
    # Every running server: the one the test above adds too, when it ran.
    cluster.wait_applied(index)
    for node in cluster.live_nodes():
        r = call(cluster, node, "GET", "/api/log", token)
        assert r.status_code == 401, (node.address, r.text)
    again = call(
        cluster, follower, "DELETE", f"/api/tokens/{token_id}", tokens["admin"]
    )
    assert again.status_code == 404, again.text
    users = call(cluster, follower, "GET", "/api/users", tokens["admin"]).json()
    names = {user["username"]: user for user in users["users"]}
    assert names["shortlived"]["tokens"] == []
    assert names["root"]["permissions"] == ["read", "write", "admin"]


def test_a_forged_caller_header_is_not_believed(cluster, tokens):
    """Only a peer (here: one with the cluster secret) may vouch for a
    caller; anyone else claiming to is refused, and nothing commits."""
    vouched = '{"name":"root","permissions":["read","write","admin"]}'
    before = len(cluster_log(cluster, tokens))
    for secret in (None, "wrong-secret"):
        headers = {"X-Raft-Caller": vouched, "X-Raft-Forwarded": "1"}
        if secret:
            headers["X-Raft-Secret"] = secret
        r = requests.post(
            cluster.leader().base_url + "/api/commands",
            json={"command": "forged"},
            headers=headers,
            timeout=15,
        )
        assert r.status_code == 401, r.text
    commands = [e["command"] for e in cluster_log(cluster, tokens)]
    assert "forged" not in commands and len(commands) == before


def test_monitoring_endpoints_need_no_token(cluster, tokens):
    for node in cluster.nodes[:3]:
        for path in ("/metrics", "/api/health/live", "/api/health/ready"):
            r = requests.get(node.base_url + path, timeout=15)
            assert r.status_code == 200, (node.address, path, r.text)
