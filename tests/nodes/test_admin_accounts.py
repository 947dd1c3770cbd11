"""Admin logins: ``manage.py createadmin`` and the login form itself."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from nodes.management.commands.createadmin import ensure_admin

ROOT = Path(__file__).resolve().parents[2]
# Logins live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["accounts"])


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_ensure_admin_creates_then_resets():
    assert ensure_admin("ops", "first") is True
    user = User.objects.get(username="ops")
    assert user.is_active and user.is_staff and user.is_superuser
    assert ensure_admin("ops", "second") is False
    assert authenticate(username="ops", password="second") is not None
    assert authenticate(username="ops", password="first") is None


def test_command_on_this_processes_database(settings, tmp_path, capsys):
    settings.RAFT_DATA_DIR = tmp_path
    call_command("createadmin", "--data-dir", str(tmp_path), "--username", "ops")
    out = capsys.readouterr().out
    assert "Created the admin login 'ops'" in out
    password = out.split("Password: ")[1].strip()
    assert authenticate(username="ops", password=password) is not None


def test_command_needs_to_know_the_node(monkeypatch):
    monkeypatch.delenv("RAFT_DATA_DIR", raising=False)
    with pytest.raises(CommandError, match="say which node"):
        call_command("createadmin", "--password", "x")


def test_login_form_logs_an_admin_in(client):
    ensure_admin("ops", "secret")
    response = client.post(
        "/admin/login/?next=/dashboard/",
        {"username": "ops", "password": "secret", "next": "/dashboard/"},
    )
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    wrong = client.post("/admin/login/", {"username": "ops", "password": "nope"})
    assert wrong.status_code == 200  # the form again, with its error


def test_command_on_another_nodes_data_dir(tmp_path):
    """A node's data directory that is not this process's: the login lands
    in that node's accounts database, made if new, and the Raft database
    is not even created."""
    data_dir = tmp_path / "node"
    done = subprocess.run(
        [sys.executable, "manage.py", "createadmin", "--data-dir", str(data_dir),
         "--username", "ops", "--password", "tall-pine-cones"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Created the admin login 'ops'" in done.stdout
    assert "Password:" not in done.stdout  # given, so not printed
    assert not (data_dir / "db.sqlite3").exists()
    with sqlite3.connect(data_dir / "accounts.sqlite3") as db:
        rows = db.execute(
            "SELECT is_staff, is_superuser FROM auth_user WHERE username='ops'"
        ).fetchall()
    assert rows == [(1, 1)]


# --- password validators and login throttling -------------------------------


@pytest.fixture
def fresh_throttle():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def log_in(client, username, password, address="10.0.0.1"):
    return client.post(
        "/admin/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_createadmin_refuses_a_weak_password_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "createadmin", "--data-dir", str(tmp_path),
         "--username", "ops", "--password", "password"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "password refused" in lines[0], lines
    assert "too common" in lines[0]


def test_the_admin_validates_passwords(settings):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("12345678")
    with pytest.raises(ValidationError):
        validate_password("short")
    validate_password("tall-pine-cones")


def test_repeated_failures_lock_the_login_with_a_clear_message(
    client, settings, fresh_throttle
):
    settings.RAFT_LOGIN_MAX_FAILURES = 3
    ensure_admin("ops", "tall-pine-cones")
    for _ in range(3):
        response = log_in(client, "ops", "wrong")
        assert b"Too many failed logins" not in response.content
    # Even the right password is refused while the lock lasts.
    locked = log_in(client, "ops", "tall-pine-cones")
    assert locked.status_code == 200
    assert b"Too many failed logins for this username" in locked.content
    assert b"try again in" in locked.content
    # Another address is not locked out for this username.
    assert log_in(client, "ops", "tall-pine-cones", "10.0.0.2").status_code == 302


def test_one_address_trying_many_usernames_is_locked(client, settings, fresh_throttle):
    settings.RAFT_LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    for i in range(4):
        log_in(client, f"user{i}", "wrong")
    assert b"Too many failed logins" in log_in(client, "other", "x").content


def test_the_lock_ends_after_the_window(settings, fresh_throttle):
    from raftsite.login_throttle import LoginThrottle

    settings.RAFT_LOGIN_MAX_FAILURES = 2
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    assert throttle.attempt("ops", "a") == 0
    assert throttle.attempt("ops", "a") == 0
    assert throttle.attempt("ops", "a") == 60
    now[0] += 45
    assert throttle.attempt("ops", "a") == 15
    now[0] += 15
    assert throttle.attempt("ops", "a") == 0


def test_a_success_forgets_the_failures(client, settings, fresh_throttle):
    settings.RAFT_LOGIN_MAX_FAILURES = 3
    ensure_admin("ops", "tall-pine-cones")
    for _ in range(2):
        log_in(client, "ops", "wrong")
    assert log_in(client, "ops", "tall-pine-cones").status_code == 302
    client.logout()
    for _ in range(2):
        log_in(client, "ops", "wrong")
    assert log_in(client, "ops", "tall-pine-cones").status_code == 302
