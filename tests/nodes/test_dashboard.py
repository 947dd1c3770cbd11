"""The operators' dashboard: login only, the cluster as this node sees it,
and a command form that goes through the node's API."""

import json
import re

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

from consensus.errors import NotLeader
from consensus.models import KeyValue, LogEntry
from consensus.status import CommandResult, NodeStatus, PeerInfo, ServerInfo
from nodes import dashboard, kv_stats
from nodes.client import ClientError

from .stub import Reply

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

SELF, OTHER, DOWN = "127.0.0.1:9990", "127.0.0.1:9991", "127.0.0.1:9992"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def log():
    LogEntry.objects.bulk_create(
        LogEntry(index=i, term=1, command=f"beer {i}") for i in range(1, 10)
    )


def leader_status(**changes):
    fields = dict(
        id=SELF, role="leader", term=3, leader=SELF, commit_index=7,
        last_applied=7, last_log_index=9,
        servers=tuple(ServerInfo(address, True) for address in (SELF, OTHER, DOWN)),
        peers=(
            PeerInfo(OTHER, True, match_index=9, next_index=10, last_contact_s=0.1),
            PeerInfo(DOWN, True, match_index=4, next_index=5, last_contact_s=12.5),
        ),
    )  # fmt: skip
    fields.update(changes)
    return NodeStatus(**fields)


def fake_fetch(answers):
    """fetch(address, path) from a dict; a missing key is unreachable."""

    def fetch(address, path):
        if (address, path) not in answers:
            raise ClientError("connection refused")
        return answers[(address, path)]

    return fetch


OTHER_STATUS = {"id": OTHER, "role": "follower", "term": 3, "leader": SELF,
                "commit_index": 7, "last_applied": 7, "last_log_index": 9}  # fmt: skip


# --- login -------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login(client, runtime):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"
    assert client.get("/").status_code == 302  # the root leads there too


def test_scripts_get_401_without_a_login(client, runtime):
    assert client.get("/dashboard/data").status_code == 401
    response = client.post("/dashboard/commands", {"command": "x"})
    assert response.status_code == 401
    assert runtime.submitted == []


def test_non_staff_user_gets_nothing(client, runtime):
    client.force_login(User.objects.create_user("someone", password="pw"))
    assert client.get("/dashboard/").status_code == 302
    assert client.get("/dashboard/data").status_code == 401


def _sample_paths(patterns, prefix=""):
    """A concrete path for every URL pattern: "1" for each parameter, the
    first choice of a regex alternation (the admin's app_label)."""
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern.pattern, RegexPattern):
            route = re.sub(r"\(\?P<\w+>(\w+)(\|\w+)*\)", r"\1", route)
            route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
            route = route.replace("^", "").replace("$", "").replace("\\", "")
        else:
            route = re.sub(r"<[^>]+>", "1", route)
        if isinstance(pattern, URLResolver):
            yield from _sample_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + route


def test_nothing_but_the_api_and_peer_rpc_answers_without_a_login(client, runtime):
    """Every page of every app, the membership pages included, sends an
    anonymous user to the login form; only /api/, /raft/, static files and
    the login and logout pages answer, and /metrics (open to Prometheus)."""
    public = (
        "/api/",
        "/raft/",
        "/static/",
        "/metrics",
        "/admin/login/",
        "/admin/logout/",
    )
    checked = []
    for path in _sample_paths(get_resolver().url_patterns):
        if path.startswith(public):
            continue
        for method in (client.get, client.post):
            response = method(path)
            checked.append(path)
            assert response.status_code in (302, 401, 404, 405), path
            if response.status_code == 302:
                assert response["Location"].startswith(
                    ("/admin/login/", "/dashboard/")
                ), path
    assert "/dashboard/" in checked and "/admin/consensus/logentry/" in checked


# --- the page and its data ----------------------------------------------------------


def test_dashboard_page(admin_client, runtime, log, monkeypatch):
    monkeypatch.setattr(dashboard, "fetch_json", fake_fetch({}))
    response = admin_client.get("/dashboard/")
    assert response.status_code == 200
    assert "nodes/dashboard.html" in [t.name for t in response.templates]
    content = response.content.decode()
    assert 'id="dashboard-snapshot"' in content
    assert "nodes/dashboard.js" in content
    assert 'href="/admin/consensus/logentry/"' in content
    assert 'action="/dashboard/commands"' in content


def test_leader_sees_every_server_with_its_progress(runtime, log):
    runtime.node_status = leader_status()
    snapshot = dashboard.cluster_snapshot(
        runtime.node_status, fake_fetch({(OTHER, "/api/status"): OTHER_STATUS})
    )
    rows = {row["id"]: row for row in snapshot["servers"]}
    assert list(rows) == [SELF, OTHER, DOWN]
    assert snapshot["leader"] == SELF and snapshot["progress_from"] == SELF
    assert rows[SELF]["self"]
    assert (rows[SELF]["role"], rows[SELF]["match_index"]) == ("leader", 9)
    assert rows[OTHER]["reachable"] and rows[OTHER]["role"] == "follower"
    assert (rows[OTHER]["match_index"], rows[OTHER]["last_contact_s"]) == (9, 0.1)
    assert not rows[DOWN]["reachable"]
    assert rows[DOWN]["error"] == "connection refused"
    assert (rows[DOWN]["match_index"], rows[DOWN]["role"]) == (4, None)
    # Raft §5.3: the newest committed entries only (commit index 7).
    assert [e["index"] for e in snapshot["entries"]] == [7, 6, 5, 4, 3, 2, 1]


def test_follower_shows_the_leaders_view(runtime, log):
    status = leader_status(id=OTHER, role="follower", leader=SELF, peers=())
    leader_view = {
        "id": SELF, "leader": SELF,
        "servers": [
            {"id": SELF, "voter": True, "role": "leader", "match_index": None},
            {"id": OTHER, "voter": True, "role": "follower", "match_index": 8,
             "last_contact_s": 0.2},
        ],
    }  # fmt: skip
    fetch = fake_fetch(
        {
            (SELF, "/api/status"): dict(OTHER_STATUS, id=SELF, role="leader"),
            (SELF, "/api/servers"): leader_view,
        }
    )
    snapshot = dashboard.cluster_snapshot(status, fetch)
    rows = {row["id"]: row for row in snapshot["servers"]}
    assert snapshot["progress_from"] == SELF
    assert rows[OTHER]["self"] and rows[OTHER]["match_index"] == 8
    # The leader's own match index is its last log index.
    assert rows[SELF]["match_index"] == 9 and rows[SELF]["role"] == "leader"
    assert rows[DOWN]["match_index"] is None and not rows[DOWN]["reachable"]


def test_this_node_is_never_fetched_over_http(runtime, log):
    """Its own row comes from its runtime's status, even when it names
    itself as the leader without being it (a leader stepping down)."""
    calls = []

    def fetch(address, path):
        calls.append((address, path))
        raise ClientError("connection refused")

    for status in (
        leader_status(),
        leader_status(id=OTHER, role="follower", leader=SELF, peers=()),
        leader_status(role="follower", peers=()),
    ):
        calls.clear()
        snapshot = dashboard.cluster_snapshot(status, fetch)
        assert status.id not in {address for address, _ in calls}
        row = {row["id"]: row for row in snapshot["servers"]}[status.id]
        assert row["reachable"] and row["role"] == status.role
        assert row["last_log_index"] == 9 and row["commit_index"] == 7


def test_the_page_fetches_other_members_only(admin_client, runtime, log, monkeypatch):
    calls = []

    def fetch(address, path):
        calls.append((address, path))
        return dict(OTHER_STATUS, id=address)

    monkeypatch.setattr(dashboard, "fetch_json", fetch)
    runtime.node_status = leader_status()
    body = admin_client.get("/dashboard/data").json()
    assert sorted(calls) == [(OTHER, "/api/status"), (DOWN, "/api/status")]
    rows = {row["id"]: row for row in body["servers"]}
    assert rows[SELF]["self"] and rows[SELF]["role"] == "leader"
    assert rows[OTHER]["reachable"] and rows[DOWN]["reachable"]


def test_a_leader_hint_outside_the_configuration_is_never_fetched(runtime, log):
    """A forged leader hint (from a peer's message) is not asked for its
    view: the dashboard fetches from the configuration's servers only."""
    calls = []

    def fetch(address, path):
        calls.append((address, path))
        return dict(OTHER_STATUS, id=address)

    status = leader_status(
        id=OTHER, role="follower", leader="evil.example.com:80", peers=()
    )
    snapshot = dashboard.cluster_snapshot(status, fetch)
    assert "evil.example.com:80" not in {address for address, _ in calls}
    assert snapshot["progress_from"] is None


def test_follower_says_why_it_has_no_progress(runtime, log):
    status = leader_status(id=OTHER, role="follower", leader=SELF, peers=())
    snapshot = dashboard.cluster_snapshot(status, fake_fetch({}))
    assert snapshot["progress_from"] is None
    assert snapshot["progress_error"] == "connection refused"
    no_leader = leader_status(id=OTHER, role="candidate", leader=None, peers=())
    snapshot = dashboard.cluster_snapshot(no_leader, fake_fetch({}))
    assert snapshot["progress_from"] is None and snapshot["progress_error"] is None


def test_a_learner_catching_up_is_shown(runtime, log):
    learner = "127.0.0.1:9993"
    status = leader_status(
        peers=(
            PeerInfo(learner, False, match_index=2, next_index=3, last_contact_s=0.0),
        )
    )
    snapshot = dashboard.cluster_snapshot(status, fake_fetch({}))
    row = {row["id"]: row for row in snapshot["servers"]}[learner]
    assert (row["member"], row["voter"], row["match_index"]) == (False, False, 2)


def test_a_snapshot_transfer_in_progress_is_shown(
    admin_client, runtime, log, monkeypatch
):
    """Each server's latest snapshot index, and the leader's transfer of a
    snapshot to a peer (Raft §7) with its bytes sent and size."""
    sending = PeerInfo(
        DOWN, True, match_index=0, next_index=1, last_contact_s=0.3,
        snapshot_index=120, snapshot_bytes_sent=3 << 20, snapshot_size=8 << 20,
    )  # fmt: skip
    runtime.node_status = leader_status(
        snapshot_index=120,
        first_log_index=21,
        peers=(leader_status().peers[0], sending),
    )
    monkeypatch.setattr(
        dashboard,
        "fetch_json",
        fake_fetch({(OTHER, "/api/status"): dict(OTHER_STATUS, snapshot_index=100)}),
    )
    response = admin_client.get("/dashboard/")
    assert "<th>Snapshot</th>" in response.content.decode()
    assert 'href="/admin/nodes/snapshot/"' in response.content.decode()
    snapshot = response.context["snapshot"]
    assert (snapshot["snapshot_index"], snapshot["first_log_index"]) == (120, 21)
    rows = {row["id"]: row for row in snapshot["servers"]}
    assert [rows[a]["snapshot_index"] for a in (SELF, OTHER, DOWN)] == [120, 100, None]
    assert rows[DOWN]["snapshot_transfer"] == {"bytes_sent": 3 << 20, "size": 8 << 20}
    assert rows[SELF]["snapshot_transfer"] is None
    assert rows[OTHER]["snapshot_transfer"] is None
    # The page's script draws what the JSON it embeds says.
    embedded = re.search(
        r'<script id="dashboard-snapshot" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    data = json.loads(embedded.group(1))
    assert data["servers"] == json.loads(json.dumps(snapshot["servers"]))


def test_a_follower_shows_the_leaders_snapshot_transfers(runtime, log):
    status = leader_status(id=OTHER, role="follower", leader=SELF, peers=())
    leader_view = {
        "id": SELF, "leader": SELF,
        "servers": [
            {"id": SELF, "voter": True, "role": "leader", "match_index": None},
            {"id": DOWN, "voter": True, "role": "follower", "match_index": 0,
             "snapshot_bytes_sent": 10, "snapshot_size": 99},
        ],
    }  # fmt: skip
    fetch = fake_fetch(
        {
            (SELF, "/api/status"): dict(OTHER_STATUS, id=SELF, role="leader"),
            (SELF, "/api/servers"): leader_view,
        }
    )
    rows = {
        row["id"]: row for row in dashboard.cluster_snapshot(status, fetch)["servers"]
    }
    assert rows[DOWN]["snapshot_transfer"] == {"bytes_sent": 10, "size": 99}
    assert rows[OTHER]["snapshot_transfer"] is None


def test_data_endpoint(admin_client, runtime, log, monkeypatch):
    monkeypatch.setattr(dashboard, "fetch_json", fake_fetch({}))
    response = admin_client.get("/dashboard/data")
    assert response.status_code == 200
    body = response.json()
    assert body["node"] == "127.0.0.1:9990" and body["commit_index"] == 7
    assert {row["id"] for row in body["servers"]} >= {"127.0.0.1:9990"}


def test_data_endpoint_without_a_node(admin_client):
    response = admin_client.get("/dashboard/data")
    assert response.status_code == 503
    assert response.json()["error"] == "no_node"
    assert admin_client.get("/dashboard/").status_code == 200


def test_fetch_json_against_a_server(stub_server, refused_address):
    ok = stub_server(Reply(200, {"id": "x", "role": "leader"}))
    assert dashboard.fetch_json(ok.address, "/api/status")["role"] == "leader"
    assert ok.received[0].path == "/api/status"
    busy = stub_server(Reply(503, {"error": "no_leader", "detail": "starting"}))
    with pytest.raises(ClientError, match=r"answered HTTP 503 \(no_leader\)"):
        dashboard.fetch_json(busy.address, "/api/status")
    with pytest.raises(ClientError, match="connection refused"):
        dashboard.fetch_json(refused_address, "/api/status")


# --- sending a command ---------------------------------------------------------


def test_command_runs_on_this_nodes_runtime_not_over_http(
    admin_client, runtime, stub_server
):
    """The leader's own runtime commits it in process: nothing is sent to
    the node's own address."""
    itself = stub_server()
    runtime.node_id = itself.address
    runtime.outcome = CommandResult(index=12, term=3)
    response = admin_client.post("/dashboard/commands", {"command": "I like beer."})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["index"] == 12 and not body["forwarded"]
    assert body["server"] == body["leader"] == itself.address
    assert "index 12" in body["text"] and "not forwarded" in body["text"]
    [submitted] = runtime.submitted
    assert submitted.command == "I like beer."
    # A fresh pair, so a retry of it applies once (as the CLI sends).
    assert submitted.client_id and submitted.seq == 1
    assert itself.received == []


def test_a_follower_forwards_the_command_to_the_leader(
    admin_client, runtime, stub_server, app_forwarder
):
    itself = stub_server()
    leader = stub_server(
        Reply(200, {"index": 12, "term": 3, "leader": OTHER, "forwarded": False})
    )
    runtime.node_id = itself.address
    runtime.outcome = NotLeader(leader.address)
    response = admin_client.post("/dashboard/commands", {"command": "I like beer."})
    body = response.json()
    assert body["ok"] and body["index"] == 12 and body["forwarded"]
    assert "index 12" in body["text"] and OTHER in body["text"]
    [sent] = leader.received
    assert (sent.method, sent.path) == ("POST", "/api/commands")
    assert sent.headers["X-Raft-Forwarded"] == "1"
    assert sent.body["command"] == "I like beer."
    assert itself.received == []


def test_command_as_json(admin_client, runtime):
    runtime.outcome = CommandResult(index=5, term=1)
    response = admin_client.post(
        "/dashboard/commands",
        json.dumps({"command": "hi"}),
        content_type="application/json",
    )
    assert response.json()["index"] == 5
    assert runtime.submitted[0].command == "hi"


def test_command_error_in_plain_words(
    admin_client, runtime, stub_server, app_forwarder
):
    detail = "The session of this client has ended."
    leader = stub_server(Reply(409, {"error": "conflict", "detail": detail}))
    runtime.outcome = NotLeader(leader.address)
    response = admin_client.post("/dashboard/commands", {"command": "x"})
    assert response.status_code == 502
    body = response.json()
    assert not body["ok"]
    assert body["error"] == f"{runtime.node_id} answered 409 conflict: {detail}"


def test_command_without_a_node(admin_client):
    response = admin_client.post("/dashboard/commands", {"command": "x"})
    assert response.status_code == 503
    assert response.json()["error"] == "This process is not serving a Raft node."


def test_empty_command_is_refused(admin_client, runtime):
    response = admin_client.post("/dashboard/commands", {"command": "  "})
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Type a command first."}


def test_command_needs_post(admin_client, runtime):
    assert admin_client.get("/dashboard/commands").status_code == 405


def test_the_dashboard_counts_keys_and_recent_reads(runtime, log, monkeypatch):
    for n in range(3):
        KeyValue.objects.create(key=f"k{n}", value="v", revision=n + 1)
    now = [1000.5]
    meter = kv_stats.ReadMeter(clock=lambda: now[0])
    monkeypatch.setattr(kv_stats, "reads", meter)
    meter.record(25)
    now[0] = 1001.5  # the second of those reads has passed
    snapshot = dashboard.cluster_snapshot(leader_status(), fake_fetch({}))
    assert snapshot["keys"] == 3
    assert snapshot["kv_reads_per_s"] == 2.5  # 25 reads over 10 s
    now[0] = 1020.0
    assert meter.per_second() == 0.0
