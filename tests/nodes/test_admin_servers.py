"""The admin's servers page on a FakeRuntime, other nodes as StubServers:
what it shows, how it reports the outcome of an add or a remove, and that
its own node is asked in process, never over HTTP."""

from dataclasses import replace

import pytest

from consensus.errors import NotLeader
from consensus.membership import CatchupFailed
from consensus.status import PeerInfo

from .stub import Reply
from .test_api_membership import FakeMembership

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

LEARNER = "127.0.0.1:9993"
LEADER_VIEW = {
    "id": None,  # filled in with the stub's address
    "role": "leader",
    "term": 4,
    "leader": None,
    "servers": [
        {"id": "127.0.0.1:9990", "voter": True, "role": "leader",
         "match_index": None, "next_index": None, "last_contact_s": None},
        {"id": LEARNER, "voter": False, "role": "learner",
         "match_index": 812, "next_index": 813, "last_contact_s": 0.25},
    ],
}  # fmt: skip
CHANGE = {"address": LEARNER, "index": 40, "term": 4, "changed": True}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def node(runtime, stub_server, app_forwarder):
    """The FakeRuntime, at the address of a StubServer that records any
    request sent to it: the page must send none."""
    itself = stub_server()
    runtime.node_id = itself.address
    runtime.node_status = replace(runtime.node_status, id=itself.address)
    runtime.membership = FakeMembership()
    runtime.itself = itself
    yield runtime
    assert itself.received == []


def as_follower_of(runtime, leader):
    runtime.node_status = replace(runtime.node_status, role="follower", leader=leader)


def test_login_is_required(client, settings):
    settings.RAFT_NODE_ID = "127.0.0.1:1"
    response = client.get("/admin/nodes/server/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_leader_shows_its_own_view(admin_client, node):
    learner = PeerInfo(
        LEARNER, False, match_index=812, next_index=813, last_contact_s=0.25
    )
    node.node_status = replace(node.node_status, leader=node.node_id, peers=(learner,))
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f"As seen by <strong>{node.node_id}</strong>" in text
    assert "learner" in text and "812" in text and "0.25 s ago" in text
    assert f"/admin/nodes/server/{LEARNER}/remove/" in text


def test_a_follower_shows_the_leaders_view(admin_client, node, stub_server):
    leader = stub_server()
    leader.script = [Reply(200, {**LEADER_VIEW, "id": leader.address})]
    as_follower_of(node, leader.address)
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f"As seen by <strong>{leader.address}</strong>" in text
    assert "learner" in text and "812" in text and "0.25 s ago" in text
    assert f"/admin/nodes/server/{LEARNER}/remove/" in text
    assert [(r.method, r.path) for r in leader.received] == [("GET", "/api/servers")]


def test_an_unreachable_leader_is_reported(admin_client, node, refused_address):
    as_follower_of(node, refused_address)
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith(
        f"Showing {node.node_id}'s view: the leader's failed (cannot reach"
    )
    assert f"As seen by <strong>{node.node_id}</strong>" in response.content.decode()


def test_a_process_without_a_runtime_asks_its_node_over_http(
    admin_client, settings, stub_server
):
    """E.g. a test driving the admin of a running cluster: RAFT_NODE_ID."""
    leader = stub_server()
    leader.script = [Reply(200, {**LEADER_VIEW, "id": leader.address})]
    servers = [*LEADER_VIEW["servers"], {"id": leader.address, "voter": True}]
    follower_view = {
        **LEADER_VIEW, "id": "f", "role": "follower", "leader": leader.address,
        "servers": servers,
    }  # fmt: skip
    follower = stub_server(Reply(200, follower_view))
    settings.RAFT_NODE_ID = follower.address
    response = admin_client.get("/admin/nodes/server/")
    assert f"As seen by <strong>{leader.address}</strong>" in response.content.decode()
    assert [(r.method, r.path) for r in follower.received + leader.received] == [
        ("GET", "/api/servers"), ("GET", "/api/servers")
    ]  # fmt: skip


def test_a_leader_hint_outside_the_configuration_is_not_asked(
    admin_client, settings, stub_server
):
    """A forged leader hint (a peer's message named it) is never fetched."""
    forged = stub_server(Reply(200, {**LEADER_VIEW, "id": "evil"}))
    follower = stub_server(
        Reply(
            200,
            {**LEADER_VIEW, "id": "f", "role": "follower", "leader": forged.address},
        )
    )
    settings.RAFT_NODE_ID = follower.address
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    assert forged.received == []


def test_a_process_without_a_runtime_reports_its_node_unreachable(
    admin_client, settings, refused_address
):
    settings.RAFT_NODE_ID = refused_address
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Cannot read the servers: cannot reach")


def test_add_form_reports_a_failed_catch_up(admin_client, node):
    node.membership.outcome = CatchupFailed(f"{LEARNER} did not catch up within 30 s")
    response = admin_client.post("/admin/nodes/server/add/", {"address": ":9993"})
    assert response.status_code == 200  # the form again, with the error
    [message] = messages_of(response)
    assert message == (
        f"Could not add {LEARNER}: {node.node_id} answered 422 "
        f"catchup_failed: {LEARNER} did not catch up within 30 s.."
    )
    assert node.membership.calls == [("add", LEARNER)]


def test_add_form_reports_success(admin_client, node):
    response = admin_client.post("/admin/nodes/server/add/", {"address": ":9993"})
    assert response.status_code == 302
    [message] = messages_of(admin_client.get("/admin/"))
    assert message == (
        f"Added {LEARNER}: configuration committed at index 12 (term 2) "
        f"by {node.node_id}, the leader (not forwarded)"
    )


def test_add_form_refuses_a_bad_address_without_asking(admin_client, node):
    response = admin_client.post("/admin/nodes/server/add/", {"address": "nonsense"})
    assert "invalid server address" in response.content.decode()
    assert node.membership.calls == []


def test_a_follower_forwards_a_remove_to_the_leader(admin_client, node, stub_server):
    leader = stub_server(Reply(200, {**CHANGE, "leader": "127.0.0.1:9990"}))
    node.membership.outcome = NotLeader(leader.address)
    url = f"/admin/nodes/server/{LEARNER}/remove/"
    confirm = admin_client.get(url)
    assert "Yes, remove it" in confirm.content.decode()
    assert node.membership.calls == []
    response = admin_client.post(url)
    assert response.status_code == 302
    [message] = messages_of(admin_client.get("/admin/"))
    assert message == (
        f"Removed {LEARNER}: configuration committed at index 40 (term 4) "
        f"by {node.node_id}, forwarded to leader 127.0.0.1:9990"
    )
    [sent] = leader.received
    assert (sent.method, sent.path) == ("DELETE", f"/api/servers/{LEARNER}")
    assert sent.headers["X-Raft-Forwarded"] == "1"
