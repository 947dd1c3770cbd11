"""The loop thread's raw write transactions keep Django's cursor API and
error classes, and leave the connection as Django expects it."""

import pytest
from django.db import IntegrityError, connection, transaction

from consensus import sqlite_cursor
from consensus.models import PersistentState
from consensus.storage import Storage

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE = 'UPDATE "consensus_persistentstate" SET "last_applied" = %s WHERE id = 1'


@pytest.fixture
def state():
    Storage().prepare([])
    return lambda: PersistentState.objects.get(pk=1).last_applied


def test_a_transaction_commits_and_leaves_autocommit(state):
    with sqlite_cursor.write_transaction() as cursor:
        cursor.execute(UPDATE, [7])
        assert connection.connection.in_transaction
    assert state() == 7
    assert not connection.connection.in_transaction
    assert connection.get_autocommit() and not connection.in_atomic_block


def test_a_failure_rolls_back_and_the_next_transaction_starts(state):
    with pytest.raises(ValueError), sqlite_cursor.write_transaction() as cursor:
        cursor.execute(UPDATE, [7])
        raise ValueError("failed mid-transaction")
    assert state() == 0
    with sqlite_cursor.write_transaction() as cursor:
        cursor.execute(UPDATE, [8])
    assert state() == 8


def test_sqlite_errors_are_djangos(state):
    # A state part may catch django.db's errors, as from connection.cursor().
    insert = 'INSERT INTO "consensus_persistentstate" ("id", "current_term",'
    insert += ' "last_applied") VALUES (%s, %s, %s)'
    with pytest.raises(IntegrityError), sqlite_cursor.write_transaction() as cursor:
        cursor.execute(insert, [1, 0, 0])
    assert not connection.connection.in_transaction


def test_placeholders_are_djangos():
    with sqlite_cursor.cursor() as cursor:
        cursor.execute("SELECT %s, '100%%'", [5])
        assert cursor.fetchone() == (5, "100%")
        cursor.execute("SELECT %(a)s + %(b)s", {"a": 2, "b": 3})
        assert cursor.fetchall() == [(5,)]
        cursor.execute("SELECT '%s'")  # no parameters: nothing is converted
        assert cursor.fetchone() == ("%s",)


def test_synchronous_is_reset_after_a_normal_transaction(state):
    def level():
        with connection.cursor() as cursor:
            return cursor.execute("PRAGMA synchronous").fetchone()[0]

    with sqlite_cursor.write_transaction(synchronous="NORMAL") as cursor:
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert level() == 2


def test_refused_inside_an_atomic_block(state):
    # BEGIN inside Django's transaction would fail, or its COMMIT end
    # Django's transaction from under it.
    with transaction.atomic():
        with pytest.raises(RuntimeError), sqlite_cursor.write_transaction():
            pass
