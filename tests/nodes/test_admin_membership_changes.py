"""The admin's membership changes: who asked for each configuration, when,
and what it was; read-only, and the newest on the servers page."""

import json

import pytest
from django.contrib.auth.models import Permission, User

from consensus.models import MembershipChange

pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

PAGE = "/admin/consensus/membershipchange/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def configuration(voters, learners=()):
    return json.dumps({"voters": sorted(voters), "learners": sorted(learners)})


@pytest.fixture
def changes():
    """A learner added by an admin login, then promoted by an open API."""
    MembershipChange.objects.create(
        index=12,
        timestamp_ms=1_764_565_200_000,  # 2025-12-01 05:00:00 UTC
        requested_by="alice (admin site)",
        configuration=configuration({"a:1", "b:2"}, {"c:3"}),
    )
    MembershipChange.objects.create(
        index=15,
        timestamp_ms=1_764_565_261_500,
        requested_by="",
        configuration=configuration({"a:1", "b:2", "c:3"}),
    )


def test_the_list_shows_who_asked_when_and_the_configuration(admin_client, changes):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert "alice (admin site)" in text and "open API" in text
    assert "2025-12-01 05:00:00 UTC" in text and "2025-12-01 05:01:01 UTC" in text
    assert "a:1, b:2, c:3" in text  # index 15's voters
    # Newest first.
    assert text.index("2025-12-01 05:01:01 UTC") < text.index("2025-12-01 05:00:00")


def test_a_change_is_shown_read_only(admin_client, changes):
    response = admin_client.get(f"{PAGE}12/change/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "alice (admin site)" in text and "c:3" in text
    assert 'name="_save"' not in text
    assert admin_client.post(f"{PAGE}12/change/", {}).status_code == 403
    assert admin_client.post(f"{PAGE}12/delete/", {"post": "yes"}).status_code == 403
    assert MembershipChange.objects.count() == 2


def test_staff_without_view_permission_gets_403(client, changes):
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
    assert client.get(PAGE).status_code == 403


def test_the_servers_page_shows_the_newest_changes(admin_client, runtime, changes):
    response = admin_client.get("/admin/nodes/server/")
    assert response.status_code == 200
    [newest, older] = response.context["changes"]
    assert (newest["index"], newest["requested_by"]) == (15, "open API")
    assert (older["index"], older["time"]) == (12, "2025-12-01 05:00:00 UTC")
    assert older["learners"] == "c:3"
    assert PAGE in response.content.decode()


def test_the_servers_page_leaves_them_out_without_view_permission(client, runtime):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_server"]))
    client.force_login(user)
    response = client.get("/admin/nodes/server/")
    assert response.status_code == 200
    assert response.context["changes"] is None
    assert "Recent membership changes" not in response.content.decode()
