"""An admin's logins beside a client write load, against a real cluster.

The Raft database of a node has one writer, its runtime's loop thread: an
admin session (logins, sessions, last_login) must not write to it, or the
loop queues on SQLite's lock behind request threads.
"""

import contextlib
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from .conftest import running_cluster
from .harness import ROOT, LocalCluster, manage

pytestmark = pytest.mark.cluster

CLIENTS = 16
ADMIN_ROUNDS = 8
LOAD_DEADLINE_S = 120.0
USERNAME = "ops"
ADMIN_PAGES = (
    "/admin/",
    "/admin/consensus/logentry/",
    "/admin/consensus/persistentstate/",
    "/admin/nodes/server/",
    "/dashboard/",
)
# What the loop thread writes: the log, the persistent state and the state
# machine's applied state. Migrations record themselves in every database
# Django migrates.
RAFT_TABLES = {
    "consensus_logentry",
    "consensus_persistentstate",
    "consensus_appliedstate",
    "consensus_appliedmessage",
    "consensus_clientsession",
    "consensus_clientanswer",
    "consensus_clusteruser",
    "consensus_clustertoken",
    "consensus_membershipchange",
    "consensus_keyvalue",
    "consensus_keyevent",
    "django_migrations",
}
# A data directory as the layout before accounts.sqlite3 left it: every app
# migrated into db.sqlite3, and a login there.
OLD_LAYOUT = """\
import django
django.setup()
from django.core.management import call_command
from django.db import router
from nodes.management.commands.createadmin import ensure_admin
router.routers = []
call_command("migrate", verbosity=0)
ensure_admin("olduser", "old-password")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, "adminwriters") as cluster:
        yield cluster


def read_only(path) -> contextlib.closing:
    # So the checks themselves cannot write to the node's databases.
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def tables(path) -> set[str]:
    with read_only(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {name for (name,) in rows if not name.startswith("sqlite_")}


def csrf_token(http: requests.Session) -> str:
    return next(c.value for c in http.cookies if c.name.startswith("raft_csrf_"))


def rows_outside_raft(path) -> dict[str, list]:
    with read_only(path) as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}"))
            for table in tables(path) - RAFT_TABLES
        }


def log_in(http: requests.Session, base_url: str, username, password) -> bool:
    """Submit the admin's login form, as a browser does; return whether it
    let the user in."""
    http.get(f"{base_url}/admin/login/", timeout=10).raise_for_status()
    login = http.post(
        f"{base_url}/admin/login/?next=/admin/",
        data={
            "username": username,
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": csrf_token(http),
        },
        timeout=10,
    )
    assert login.status_code == 200, login.status_code
    return login.url == f"{base_url}/admin/"


def admin_round(http: requests.Session, base_url: str, password: str) -> None:
    """Log in, open the admin's and dashboard's pages, log out: each login
    writes a session and last_login, each logout deletes the session."""
    assert log_in(http, base_url, USERNAME, password)
    for path in ADMIN_PAGES:
        page = http.get(base_url + path, timeout=10)
        assert page.status_code == 200 and "/admin/login/" not in page.url, path
    logout = http.post(
        f"{base_url}/admin/logout/",
        data={"csrfmiddlewaretoken": csrf_token(http)},
        timeout=10,
    )
    assert logout.status_code == 200, logout.status_code


def test_admin_session_does_not_write_the_raft_database(cluster):
    """16 clients write while an admin logs in and out of the leader again
    and again: every write commits under the same leader, and the leader's
    Raft database holds nothing of the admin's."""
    leader = cluster.leader()
    before = cluster.status(leader)
    password = secrets.token_urlsafe(12)
    made = manage(
        "createadmin", "--data-dir", str(leader.data_dir),
        # "=": a token_urlsafe password starts with "-" one time in 64,
        # which argparse would take for an option.
        "--username", USERNAME, f"--password={password}",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr

    admin_done = threading.Event()
    deadline = time.monotonic() + LOAD_DEADLINE_S
    failures: list[str] = []
    indexes: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with requests.Session() as http:
            sent = 0
            # At least a few writes each, and writes for as long as the
            # admin is busy, so the two overlap throughout.
            while (sent < 5 or not admin_done.is_set()) and (
                time.monotonic() < deadline
            ):
                command = f"client {number} write {sent} {uuid.uuid4().hex[:6]}"
                try:
                    r = http.post(
                        f"{leader.base_url}/api/commands",
                        json={"command": command},
                        timeout=(1.0, 15.0),
                    )
                    outcome = r.status_code, r.text
                except requests.RequestException as exc:
                    outcome = None, repr(exc)
                with lock:
                    if outcome[0] == 200:
                        indexes.append(r.json()["index"])
                    else:
                        failures.append(f"{command!r}: {outcome[0]} {outcome[1]}")
                sent += 1

    def admin() -> None:
        try:
            with requests.Session() as http:
                for _ in range(ADMIN_ROUNDS):
                    admin_round(http, leader.base_url, password)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failures.append(f"admin: {exc!r}")
        finally:
            admin_done.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=admin))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + 30))
    assert not any(t.is_alive() for t in threads), "load still running"

    assert not failures, failures[:10]
    assert len(indexes) >= CLIENTS * 5
    after = cluster.status(leader)
    assert (after["role"], after["term"]) == ("leader", before["term"])
    assert cluster.agreed_leader() is leader
    assert (
        after["commit_index"] >= max(indexes) >= before["commit_index"] + len(indexes)
    )
    locked = [line for line in cluster.stderr_lines(leader) if "locked" in line]
    assert not locked, locked

    # The structural check: the admin's sessions, logins and history are in
    # the node's accounts database, none of it in its Raft database.
    raft_tables = tables(leader.data_dir / "db.sqlite3")
    assert raft_tables <= RAFT_TABLES, sorted(raft_tables - RAFT_TABLES)
    accounts = leader.data_dir / "accounts.sqlite3"
    with read_only(accounts) as db:
        (last_login,) = db.execute(
            "SELECT last_login FROM auth_user WHERE username = ?", (USERNAME,)
        ).fetchone()
    assert last_login is not None


def test_a_data_directory_of_the_old_layout_starts(tmp_path):
    """A node whose logins are in its Raft database (the layout before
    accounts.sqlite3) starts and serves; it names the logins to make again
    and leaves those tables as they were."""
    cluster = LocalCluster(1, base_dir=tmp_path)
    node = cluster.nodes[0]
    raft_db = node.data_dir / "db.sqlite3"
    try:
        node.data_dir.mkdir(parents=True)
        env = dict(os.environ, RAFT_DATA_DIR=str(node.data_dir))
        old = subprocess.run(
            [sys.executable, "-c", OLD_LAYOUT],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert old.returncode == 0, old.stderr
        before = rows_outside_raft(raft_db)
        with read_only(raft_db) as db:
            users = db.execute("SELECT username FROM auth_user").fetchall()
        assert users == [("olduser",)]

        cluster.start()
        cluster.leader(timeout=20)
        cluster.write(node, "after the upgrade")
        warning = [line for line in cluster.stdout_lines(node) if "olduser" in line]
        assert warning and "createadmin" in warning[0], cluster.stdout_lines(node)
        with requests.Session() as http:
            assert not log_in(http, node.base_url, "olduser", "old-password")
        made = manage(
            "createadmin", "--data-dir", str(node.data_dir),
            "--username", "olduser", "--password", "new-password",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        with requests.Session() as http:
            assert log_in(http, node.base_url, "olduser", "new-password")
        assert cluster.stop(node)
    finally:
        cluster.close()
    assert rows_outside_raft(raft_db) == before
