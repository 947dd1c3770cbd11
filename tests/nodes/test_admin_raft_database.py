"""No admin request writes to the Raft database or takes its lock: the
runtime's loop thread is its one writer (raftsite.routers)."""

import pytest
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from consensus.models import LogEntry, PersistentState
from nodes.models import Server

LOG = "/admin/consensus/logentry/"
STATE = "/admin/consensus/persistentstate/"
# A browser's whole session: log in, look around, try every change the
# read-only pages refuse, log out.
REQUESTS = [
    ("get", "/admin/", None),
    ("get", LOG, None),
    ("get", f"{LOG}?q=beer&type__exact=command", None),
    ("get", f"{LOG}1/change/", None),
    ("get", f"{LOG}1/history/", None),
    ("get", STATE, None),
    ("get", f"{STATE}1/change/", None),
    ("get", "/admin/auth/user/", None),
    ("get", "/dashboard/", None),
    ("post", f"{LOG}add/", {"index": 9, "term": 9, "command": "forged"}),
    ("post", f"{LOG}1/change/", {"command": "changed", "term": 9}),
    ("post", f"{LOG}1/delete/", {"post": "yes"}),
    ("post", LOG, {"action": "delete_selected", "_selected_action": ["1"]}),
    ("post", f"{STATE}1/change/", {"current_term": 9}),
    ("post", f"{STATE}1/delete/", {"post": "yes"}),
]


@pytest.mark.parametrize(
    "model, database",
    [(LogEntry, "default"), (PersistentState, "default"), (Server, "default"),
     (User, "accounts"), (Permission, "accounts"), (Session, "accounts"),
     (AdminLogEntry, "accounts"), (ContentType, "accounts")],
)  # fmt: skip
def test_each_model_has_one_database(model, database):
    other = {"default": "accounts", "accounts": "default"}[database]
    assert router.db_for_read(model) == router.db_for_write(model) == database
    assert router.allow_migrate_model(database, model)
    assert not router.allow_migrate_model(other, model)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Outside a test transaction, so an atomic block in a view shows as the BEGIN
# it sends to SQLite (BEGIN IMMEDIATE takes the write lock at once).
@pytest.mark.django_db(transaction=True, databases=["default", "accounts"])
def test_an_admin_session_only_reads_the_raft_database(client):
    LogEntry.objects.create(index=1, term=1, command="beer 1")
    PersistentState.objects.create(pk=1, current_term=1)
    User.objects.create_superuser("ops", password="pw")
    with (
        CaptureQueriesContext(connections["default"]) as raft,
        CaptureQueriesContext(connections["accounts"]) as accounts,
    ):
        login = client.post("/admin/login/", {"username": "ops", "password": "pw"})
        assert login.status_code == 302
        for method, url, data in REQUESTS:
            response = getattr(client, method)(url, data)
            assert response.status_code in (200, 302, 403), (url, response)
        client.post("/admin/logout/")
    statements = [query["sql"].split()[0].upper() for query in raft.captured_queries]
    assert set(statements) <= {"SELECT"}, [
        query["sql"] for query in raft.captured_queries
    ]
    # The session and last_login went somewhere: the accounts database.
    written = {query["sql"].split()[0].upper() for query in accounts}
    assert {"INSERT", "UPDATE"} <= written
    assert LogEntry.objects.get(index=1).command == "beer 1"
    assert PersistentState.objects.get(pk=1).current_term == 1
