"""The users and tokens API on a FakeRuntime that applies the ACCESS entries
it is given: each change is one entry proposed through the runtime."""

import json

import pytest

from consensus import access
from consensus.models import ClusterToken, ClusterUser

pytestmark = pytest.mark.django_db


def operations(runtime):
    return [json.loads(sent.operation) for sent in runtime.access_submitted]


def test_create_token_answers_the_token_of_the_entrys_digest(api, runtime):
    response = api.post(
        "/api/tokens", {"username": "ci", "permissions": "write,read"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    [op] = operations(runtime)
    assert op["op"] == "create_token" and op["permissions"] == ["read", "write"]
    assert access.token_digest(body["token"]) == op["digest"]
    assert body["token_id"] == op["token_id"] and body["index"] == 7
    assert access.authenticate(body["token"]).username == "ci"


def test_patch_user_sets_permissions_through_an_entry(api, runtime):
    ClusterUser.objects.create(
        username="ci", permissions="read", created_index=3, created_ms=0
    )
    response = api.patch(
        "/api/users/ci", {"permissions": ["admin", "read"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["permissions"] == ["read", "admin"]
    assert operations(runtime) == [
        {"op": "set_permissions", "username": "ci", "permissions": ["read", "admin"]}
    ]
    assert ClusterUser.objects.get(username="ci").permissions == "read,admin"


def test_patch_refuses_unknown_permissions_without_an_entry(api, runtime):
    response = api.patch("/api/users/ci", {"permissions": ["root"]}, format="json")
    assert response.status_code == 400
    assert "unknown permission root" in response.json()["detail"]
    assert runtime.access_submitted == []


def test_patch_of_an_unknown_user_is_404(api, runtime):
    response = api.patch("/api/users/ghost", {"permissions": ["read"]}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "no user ghost; nothing was changed."


def test_revoke_and_delete_go_through_entries(api, runtime):
    ClusterUser.objects.create(
        username="ci", permissions="read", created_index=3, created_ms=0
    )
    ClusterToken.objects.create(
        digest="d" * 64, token_id="0123456789ab", username="ci",
        created_index=3, created_ms=0,
    )  # fmt: skip
    assert api.delete("/api/tokens/0123456789ab").status_code == 200
    assert api.delete("/api/users/ci").status_code == 200
    assert operations(runtime) == [
        {"op": "revoke_token", "token_id": "0123456789ab"},
        {"op": "delete_user", "username": "ci"},
    ]
    assert not ClusterUser.objects.exists() and not ClusterToken.objects.exists()
