"""The admin's log and node state pages: read-only, fast to page, login only."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consensus.admin import LogEntryAdmin, LogPaginator, PersistentStateAdmin
from consensus.models import LogEntry, PersistentState

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

LOG = "/admin/consensus/logentry/"
STATE = "/admin/consensus/persistentstate/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Logins in these tests need no real key stretching.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def log():
    """Entries 1-9 as the FakeRuntime's node holds them (commit index 7)."""
    rows = [LogEntry(index=1, term=0, type="config", command='{"voters": []}')]
    rows.append(LogEntry(index=2, term=1, type="noop"))
    rows += [
        LogEntry(index=i, term=1 if i < 6 else 2, command=f"beer {i}")
        for i in range(3, 10)
    ]
    LogEntry.objects.bulk_create(rows)
    return rows


@pytest.fixture
def state():
    return PersistentState.objects.create(
        pk=1, current_term=2, voted_for="127.0.0.1:9990", last_applied=6
    )


def shown(response):
    """The indexes on a changelist page, in the order shown."""
    return [entry.index for entry in response.context["cl"].result_list]


# --- anonymous users -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/admin/", LOG, f"{LOG}3/change/", f"{LOG}add/", f"{LOG}3/delete/", STATE,
     f"{STATE}1/change/", "/admin/auth/user/"],
)  # fmt: skip
def test_anonymous_users_are_sent_to_the_login_page(client, log, state, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_anonymous_post_changes_nothing(client, log, state):
    client.post(f"{LOG}3/change/", {"command": "changed", "term": 9})
    client.post(f"{LOG}3/delete/", {"post": "yes"})
    assert LogEntry.objects.get(index=3).command == "beer 3"
    assert PersistentState.objects.get(pk=1).current_term == 2


def test_staff_without_permission_sees_no_log(client, log):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(LOG).status_code == 403


# --- read-only -------------------------------------------------------------


@pytest.mark.parametrize(
    "model_admin, model",
    [(LogEntryAdmin, LogEntry), (PersistentStateAdmin, PersistentState)],
)
def test_view_permission_only(rf, admin_user, model_admin, model):
    request = rf.get("/")
    request.user = admin_user
    instance = model_admin(model, admin.site)
    assert instance.has_view_permission(request)
    assert not instance.has_add_permission(request)
    assert not instance.has_change_permission(request)
    assert not instance.has_delete_permission(request)
    assert not instance.get_actions(request)


def test_log_entry_cannot_be_added(admin_client, log):
    assert admin_client.get(f"{LOG}add/").status_code == 403
    response = admin_client.post(
        f"{LOG}add/", {"index": 99, "term": 1, "type": "command"}
    )
    assert response.status_code == 403
    assert not LogEntry.objects.filter(index=99).exists()


def test_log_entry_cannot_be_changed(admin_client, log):
    page = admin_client.get(f"{LOG}3/change/")
    assert page.status_code == 200  # a view page, without a Save button
    assert b'name="_save"' not in page.content
    assert b"beer 3" in page.content
    response = admin_client.post(f"{LOG}3/change/", {"command": "changed", "term": 9})
    assert response.status_code == 403
    assert LogEntry.objects.get(index=3).command == "beer 3"


def test_log_entry_cannot_be_deleted(admin_client, log):
    assert admin_client.get(f"{LOG}3/delete/").status_code == 403
    assert admin_client.post(f"{LOG}3/delete/", {"post": "yes"}).status_code == 403
    # No bulk action either: "delete selected" is not offered.
    admin_client.post(LOG, {"action": "delete_selected", "_selected_action": ["3"]})
    assert LogEntry.objects.count() == 9


def test_persistent_state_cannot_be_changed_or_deleted(admin_client, state):
    assert admin_client.get(f"{STATE}add/").status_code == 403
    response = admin_client.post(
        f"{STATE}1/change/", {"current_term": 99, "voted_for": "x", "last_applied": 0}
    )
    assert response.status_code == 403
    assert admin_client.post(f"{STATE}1/delete/", {"post": "yes"}).status_code == 403
    state.refresh_from_db()
    assert (state.current_term, state.voted_for) == (2, "127.0.0.1:9990")


# --- the log changelist -----------------------------------------------------


def test_log_is_listed_newest_first_with_committed_flag(admin_client, runtime, log):
    response = admin_client.get(LOG)
    assert response.status_code == 200
    assert shown(response) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    committed = {e.index: e.committed for e in response.context["cl"].result_list}
    # The FakeRuntime's commit index is 7 (Raft §5.3: committed at or below).
    assert committed == {i: i <= 7 for i in range(1, 10)}
    for column in (b"Index", b"Term", b"Type", b"Command", b"Committed"):
        assert column in response.content


def test_committed_without_a_runtime_uses_last_applied(admin_client, log, state):
    response = admin_client.get(LOG)
    committed = {e.index: e.committed for e in response.context["cl"].result_list}
    # Applied entries were committed; beyond last_applied (6) it is unknown.
    assert committed == {i: (True if i <= 6 else None) for i in range(1, 10)}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?q=beer+4", [4]),
        ("?q=5", [5]),  # a log index
        ("?type__exact=noop", [2]),
        ("?type__exact=config", [1]),
        ("?term=2", [9, 8, 7, 6]),
        ("?committed=no", [9, 8]),
        ("?committed=yes&term=1", [5, 4, 3, 2]),
        ("?q=beer&term=2&committed=yes", [7, 6]),
    ],
)
def test_search_and_filters(admin_client, runtime, log, query, expected):
    response = admin_client.get(LOG + query)
    assert response.status_code == 200
    assert shown(response) == expected


def test_term_filter_lists_terms_and_refuses_nonsense(admin_client, runtime, log):
    response = admin_client.get(LOG)
    assert b"?term=2" in response.content and b"?term=0" in response.content
    bad = admin_client.get(LOG + "?term=abc")
    assert bad.status_code == 302 and "e=1" in bad["Location"]


@pytest.mark.parametrize("term", ["²", "١", "99999999999999999999", "-1", "1 "])
def test_term_filter_refuses_other_digits_with_a_clean_page(
    admin_client, runtime, log, term
):
    """Unicode digits and numbers beyond SQLite's range get the admin's
    "invalid filter" redirect, never a 500."""
    bad = admin_client.get(LOG, {"term": term})
    assert bad.status_code == 302 and "e=1" in bad["Location"]


@pytest.mark.parametrize("q", ["²", "99999999999999999999"])
def test_search_for_other_digits_is_a_clean_page(admin_client, runtime, log, q):
    response = admin_client.get(LOG, {"q": q})
    assert response.status_code == 200
    assert shown(response) == []


def test_pages_never_count_the_whole_log(admin_client, runtime):
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(1, 251))
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(LOG + "?p=3")
    assert shown(response) == list(range(50, 0, -1))
    assert response.context["cl"].result_count == 250
    assert b"250 log entries" in response.content
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts == []


def test_a_filtered_count_stops_at_the_cap(admin_client, runtime, monkeypatch):
    monkeypatch.setattr(LogPaginator, "COUNT_CAP", 120)
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(1, 301))
    response = admin_client.get(LOG + "?term=1")
    assert shown(response)[:2] == [300, 299]
    assert response.context["cl"].paginator.count_is_capped
    assert b"More than 120 log entries match" in response.content


def test_the_count_follows_a_compacted_log(admin_client, runtime):
    """The count is last - first + 1: a log whose head was compacted away
    starts above 1."""
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(101, 131))
    response = admin_client.get(LOG)
    assert response.context["cl"].result_count == 30


def test_empty_log(admin_client, runtime):
    response = admin_client.get(LOG)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


# --- node state --------------------------------------------------------------


def test_node_state_shows_persistent_and_volatile_state(admin_client, runtime, state):
    response = admin_client.get(STATE)
    assert response.status_code == 200
    text = response.content.decode()
    for column in ("Node", "Role", "Current term", "Voted for", "Commit index",
                   "Last applied", "Last log index", "Leader"):  # fmt: skip
        assert column in text
    for value in ("127.0.0.1:9990", "leader", ">7<", ">9<", ">6<"):
        assert value in text
    page = admin_client.get(f"{STATE}1/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_node_state_without_a_runtime(admin_client, state):
    response = admin_client.get(f"{STATE}1/change/")
    assert response.status_code == 200
    assert b"(not serving)" in response.content


def test_admin_index_links_to_the_dashboard(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert b'href="/dashboard/"' in response.content
    assert b"Open the cluster dashboard" in response.content
