"""The admin's key browser on a FakeRuntime that applies the KV entries it
is given: the list searches by prefix and links each key's revision to its
log entry; the form writes through the runtime as a KV entry, never a row
of its own; writing needs the change permission."""

import json

import pytest
from django.contrib.auth.models import Permission, User

from consensus.models import KeyValue
from consensus.status import CommandResult

pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

PAGE = "/admin/consensus/keyvalue/"
PUT = PAGE + "put/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def keys():
    for key, revision in (("app/a", 3), ("app/b", 4), ("other", 5)):
        KeyValue.objects.create(key=key, value=f"value of {key}", revision=revision)


def test_the_list_searches_by_prefix_and_links_revisions(admin_client, keys):
    page = admin_client.get(PAGE, {"q": "app/"}).content.decode()
    assert "app/a" in page and "app/b" in page and "other" not in page
    assert "/admin/consensus/logentry/3/change/" in page


def test_a_put_goes_through_the_runtime_as_a_kv_entry(
    admin_client, runtime, app_forwarder
):
    runtime.outcome = CommandResult(index=12, term=2)
    response = admin_client.post(PUT, {"key": "app/new", "value": "v", "put": "Put"})
    assert response.status_code == 302, response.content[:500]
    [submitted] = runtime.submitted
    assert json.loads(submitted.command) == {
        "op": "put", "key": "app/new", "value": "v", "prev": None
    }  # fmt: skip
    assert KeyValue.objects.get(key="app/new").revision == 12


def test_a_failed_compare_and_set_is_one_line_and_changes_nothing(
    admin_client, runtime, app_forwarder, keys
):
    runtime.outcome = CommandResult(index=12, term=2)
    response = admin_client.post(
        PUT, {"key": "app/a", "value": "x", "prev_revision": 1, "put": "Put"},
        follow=True,
    )  # fmt: skip
    text = response.content.decode()
    assert "Could not write" in text and "revision is 3" in text
    assert KeyValue.objects.get(key="app/a").value == "value of app/a"


def test_delete_through_the_form(admin_client, runtime, app_forwarder, keys):
    runtime.outcome = CommandResult(index=13, term=2)
    admin_client.post(PUT, {"key": "app/b", "value": "", "delete": "Delete"})
    assert not KeyValue.objects.filter(key="app/b").exists()


def test_viewing_alone_may_not_write(client, runtime, keys):
    user = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_keyvalue"))
    client.force_login(user)
    assert client.get(PAGE).status_code == 200
    assert client.get(PUT).status_code == 403
    assert client.post(PUT, {"key": "k", "value": "v"}).status_code == 403
    assert runtime.submitted == []
