"""The admin's cluster users page on a FakeRuntime that applies the ACCESS
entries it is given: every change is an entry proposed through the runtime
(or forwarded to the leader), with the admin login as who asked, never a
row written by the page; and each action needs its Django permission."""

import json
from dataclasses import replace

import pytest
from django.contrib.auth.models import Permission, User

from consensus import access
from consensus.errors import NotLeader
from consensus.models import ClusterToken, ClusterUser

from .stub import Reply

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

PAGE = "/admin/consensus/clusteruser/"
CREATE = PAGE + "add/"
ADMIN_SITE = "admin (admin site)"  # admin_client's login, as entries record it


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def node(runtime, stub_server, app_forwarder):
    """The FakeRuntime at the address of a StubServer that records any
    request sent to it: the page asks its own node in process, never so."""
    itself = stub_server()
    runtime.node_id = itself.address
    runtime.node_status = replace(runtime.node_status, id=itself.address)
    yield runtime
    assert itself.received == []


@pytest.fixture
def alice():
    """A user with a token, as an applied create_token entry leaves them."""
    user = ClusterUser.objects.create(
        username="alice",
        permissions="read,write",
        created_index=3,
        created_ms=0,
        created_by="root",
    )
    ClusterToken.objects.create(
        digest="d" * 64,
        token_id="0123456789ab",
        username="alice",
        created_index=3,
        created_ms=0,
        created_by="root",
    )
    return user


def operations(runtime):
    return [json.loads(sent.operation) for sent in runtime.access_submitted]


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def staff_with(*codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="consensus", codename__in=codenames
        )
    )
    return user


# --- the list -------------------------------------------------------------------


def test_the_list_shows_users_and_token_ids_never_digests(admin_client, node, alice):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert "<td>alice</td>" in text and "<td>read, write</td>" in text
    assert "<code>0123456789ab</code> (index 3, by root)" in text
    assert "d" * 64 not in text
    assert f"{PAGE}tokens/0123456789ab/revoke/" in text
    assert f"{PAGE}alice/permissions/" in text and f"{PAGE}alice/delete/" in text
    assert node.access_submitted == []


def test_view_permission_lists_without_actions(client, node, alice):
    client.force_login(staff_with("view_clusteruser"))
    response = client.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert "<td>alice</td>" in text
    assert "Create a token" not in text and "Revoke" not in text
    assert "Delete user" not in text and "Change permissions" not in text


# --- create a token ---------------------------------------------------------------


def test_create_token_proposes_an_entry_and_shows_the_token_once(admin_client, node):
    response = admin_client.post(
        CREATE, {"username": "ci", "permissions": ["write", "read"]}
    )
    assert response.status_code == 200
    [sent] = node.access_submitted
    assert sent.requested_by == ADMIN_SITE
    [op] = operations(node)
    assert op["op"] == "create_token" and op["username"] == "ci"
    assert op["permissions"] == ["read", "write"] and op["bootstrap"] is False
    token = response.context["body"]["token"]
    # The page holds the token whose digest the entry carries, and says so once.
    assert access.TOKEN.fullmatch(token)
    assert access.token_digest(token) == op["digest"]
    text = response.content.decode()
    assert f'value="{token}"' in text
    assert "it is not shown again" in text
    assert "no-store" in response["Cache-Control"]
    # Applied, the user is listed with the token's id, and the token is gone.
    listing = admin_client.get(PAGE).content.decode()
    assert "<td>ci</td>" in listing and op["token_id"] in listing
    assert token not in listing
    assert ClusterToken.objects.get(token_id=op["token_id"]).created_by == ADMIN_SITE


def test_create_token_from_a_follower_goes_to_the_leader(
    admin_client, node, stub_server
):
    minted = access.mint_token()
    leader = stub_server(
        Reply(
            200,
            {
                "username": "ci", "permissions": ["read"], "token_id": minted.token_id,
                "token": minted.token, "index": 21, "term": 4, "leader": "x",
                "forwarded": False,
            },
        )
    )  # fmt: skip
    node.outcome = NotLeader(leader.address)
    response = admin_client.post(CREATE, {"username": "ci", "permissions": ["read"]})
    assert response.status_code == 200
    assert minted.token in response.content.decode()
    [sent] = leader.received
    assert (sent.method, sent.path) == ("POST", "/api/tokens")
    assert sent.body == {"username": "ci", "permissions": ["read"]}
    # The follower vouches for the admin login (nodes.auth.Caller.headers).
    assert json.loads(sent.headers["X-Raft-Caller"])["name"] == ADMIN_SITE
    assert not ClusterUser.objects.exists()  # only the leader's entry may add it


def test_create_token_refuses_a_bad_form_without_asking(admin_client, node):
    response = admin_client.post(CREATE, {"username": "no spaces", "permissions": []})
    assert response.status_code == 200
    text = response.content.decode()
    assert "a username is 1 to 150 letters" in text
    assert "This field is required." in text
    assert node.access_submitted == []


# --- revoke, permissions, delete --------------------------------------------------


def test_revoke_asks_first_then_proposes_an_entry(admin_client, node, alice):
    url = f"{PAGE}tokens/0123456789ab/revoke/"
    confirm = admin_client.get(url)
    assert "Revoke token 0123456789ab of alice?" in confirm.content.decode()
    assert node.access_submitted == []
    response = admin_client.post(url)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert operations(node) == [{"op": "revoke_token", "token_id": "0123456789ab"}]
    assert node.access_submitted[0].requested_by == ADMIN_SITE
    assert not ClusterToken.objects.exists()
    assert ClusterUser.objects.filter(username="alice").exists()
    [message] = messages_of(admin_client.get(PAGE))
    assert message == (
        f"Revoked token 0123456789ab: committed at index 7 (term 2) by "
        f"{node.node_id}, the leader."
    )


def test_delete_user_proposes_an_entry(admin_client, node, alice):
    response = admin_client.post(f"{PAGE}alice/delete/")
    assert response.status_code == 302
    assert operations(node) == [{"op": "delete_user", "username": "alice"}]
    assert not ClusterUser.objects.exists() and not ClusterToken.objects.exists()


def test_change_permissions_proposes_an_entry(admin_client, node, alice):
    url = f"{PAGE}alice/permissions/"
    form = admin_client.get(url).content.decode()
    assert 'value="write" id="id_permissions_1" checked' in form
    response = admin_client.post(url, {"permissions": ["admin", "read"]})
    assert response.status_code == 302
    assert operations(node) == [
        {"op": "set_permissions", "username": "alice", "permissions": ["read", "admin"]}
    ]
    assert ClusterUser.objects.get(username="alice").permissions == "read,admin"


def test_a_refused_change_is_one_error_line(admin_client, node):
    """The leader applies the entry, which finds no such token."""
    response = admin_client.post(f"{PAGE}tokens/feedfeedfeed/revoke/")
    assert response.status_code == 302
    [message] = messages_of(admin_client.get(PAGE))
    assert message == (
        "Could not revoke token feedfeedfeed: no token feedfeedfeed; nothing was "
        "changed."
    )


def test_without_a_runtime_nothing_is_asked(admin_client, settings, alice):
    response = admin_client.post(f"{PAGE}alice/delete/")
    assert response.status_code == 302
    [message] = messages_of(admin_client.get(PAGE))
    assert message.startswith("Could not delete alice: the node is not running")
    assert ClusterUser.objects.filter(username="alice").exists()


# --- who may do what --------------------------------------------------------------


def test_staff_without_permission_gets_403(client, node, alice):
    client.force_login(staff_with())
    assert client.get(PAGE).status_code == 403
    for url in (
        CREATE,
        f"{PAGE}tokens/0123456789ab/revoke/",
        f"{PAGE}alice/permissions/",
        f"{PAGE}alice/delete/",
    ):
        assert client.post(url, {"permissions": ["read"]}).status_code == 403, url
    assert node.access_submitted == []


@pytest.mark.parametrize(
    "url, needed, body",
    [
        (CREATE, "add_clusteruser", {"username": "ci", "permissions": ["read"]}),
        (f"{PAGE}tokens/0123456789ab/revoke/", "change_clusteruser", {}),
        (f"{PAGE}alice/permissions/", "change_clusteruser", {"permissions": ["read"]}),
        (f"{PAGE}alice/delete/", "delete_clusteruser", {}),
    ],
)
def test_each_action_needs_its_permission(client, node, alice, url, needed, body):
    others = {"add_clusteruser", "change_clusteruser", "delete_clusteruser"} - {needed}
    user = staff_with("view_clusteruser", *others)
    client.force_login(user)
    assert client.post(url, body).status_code == 403
    assert node.access_submitted == []
    client.force_login(staff_with_more(user, needed))
    assert client.post(url, body).status_code in (200, 302)
    [sent] = node.access_submitted
    assert sent.requested_by == "staff (admin site)"


def staff_with_more(user, codename):
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="consensus", codename=codename)
    )
    # has_perm caches a user's permissions on the instance: a fresh one.
    return User.objects.get(pk=user.pk)


def test_the_admin_index_links_the_page_and_its_create_form(admin_client, node):
    text = admin_client.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in text and f'href="{CREATE}"' in text
    assert admin_client.get("/admin/consensus/").status_code == 200
