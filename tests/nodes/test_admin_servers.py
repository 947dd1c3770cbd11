"""The admin's servers page against StubServer nodes: what it shows, and
how it reports the outcome of an add or a remove."""

import pytest

from .stub import Reply

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

LEADER_VIEW = {
    "id": None,  # filled in with the stub's address
    "role": "leader",
    "term": 4,
    "leader": None,
    "servers": [
        {"id": "127.0.0.1:9990", "voter": True, "role": "leader",
         "match_index": None, "next_index": None, "last_contact_s": None},
        {"id": "127.0.0.1:9993", "voter": False, "role": "learner",
         "match_index": 812, "next_index": 813, "last_contact_s": 0.25},
    ],
}  # fmt: skip
CHANGE = {"address": "127.0.0.1:9993", "index": 40, "term": 4, "changed": True}


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_login_is_required(client, settings):
    settings.RAFT_NODE_ID = "127.0.0.1:1"
    response = client.get("/admin/nodes/server/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_follower_shows_the_leaders_view(admin_client, settings, stub_server):
    leader = stub_server()
    leader.script = [Reply(200, {**LEADER_VIEW, "id": leader.address})]
    follower = stub_server(
        Reply(
            200,
            {**LEADER_VIEW, "id": "f", "role": "follower", "leader": leader.address},
        )
    )
    settings.RAFT_NODE_ID = follower.address
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f"As seen by <strong>{leader.address}</strong>" in text
    assert "learner" in text and "812" in text and "0.25 s ago" in text
    assert "/admin/nodes/server/127.0.0.1:9993/remove/" in text
    assert [(r.method, r.path) for r in follower.received + leader.received] == [
        ("GET", "/api/servers"), ("GET", "/api/servers")
    ]  # fmt: skip


def test_an_unreachable_node_is_reported(admin_client, settings, refused_address):
    settings.RAFT_NODE_ID = refused_address
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Cannot read the servers: cannot reach")


def test_add_form_reports_a_failed_catch_up(admin_client, settings, stub_server):
    detail = "127.0.0.1:9993 did not catch up within 30 s"
    node = stub_server(Reply(422, {"error": "catchup_failed", "detail": detail}))
    settings.RAFT_NODE_ID = node.address
    response = admin_client.post("/admin/nodes/server/add/", {"address": ":9993"})
    assert response.status_code == 200  # the form again, with the error
    [message] = messages_of(response)
    assert message == (
        f"Could not add 127.0.0.1:9993: {node.address} answered 422 "
        f"catchup_failed: {detail}."
    )
    assert node.received[0].body == {"address": "127.0.0.1:9993"}


def test_add_form_refuses_a_bad_address_without_asking(
    admin_client, settings, stub_server
):
    node = stub_server(Reply(200, CHANGE))
    settings.RAFT_NODE_ID = node.address
    response = admin_client.post("/admin/nodes/server/add/", {"address": "nonsense"})
    assert "invalid server address" in response.content.decode()
    assert node.received == []


def test_remove_asks_first_then_reports_success(admin_client, settings, stub_server):
    node = stub_server(
        Reply(200, {**CHANGE, "leader": "127.0.0.1:9990", "forwarded": True})
    )
    settings.RAFT_NODE_ID = node.address
    url = "/admin/nodes/server/127.0.0.1:9993/remove/"
    confirm = admin_client.get(url)
    assert "Yes, remove it" in confirm.content.decode()
    assert node.received == []
    response = admin_client.post(url)
    assert response.status_code == 302
    [message] = messages_of(admin_client.get("/admin/"))
    assert message.startswith(
        "Removed 127.0.0.1:9993: configuration committed at index 40"
    )
    assert [(r.method, r.path) for r in node.received] == [
        ("DELETE", "/api/servers/127.0.0.1:9993")
    ]
