"""A Raft database in a file, as runnode keeps it, for the snapshot tests:
the test database is in memory, and a snapshot is read on a connection of
its own."""

import sqlite3

import pytest
from django.db import connection

from consensus.snapshots import SnapshotStore
from consensus.storage import Storage


@pytest.fixture
def raft_db(tmp_path, transactional_db):
    """The path of a WAL database with the Raft schema and one
    PersistentState and AppliedState row, in ``tmp_path``."""
    Storage().prepare([])
    path = tmp_path / "db.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consensus_appliedstate"
            " (id, message_count, configuration_index)"
            " VALUES (1, 0, 0) ON CONFLICT DO NOTHING"
        )
        cursor.execute("VACUUM INTO %s", [str(path)])
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    return path


@pytest.fixture
def store(tmp_path):
    return SnapshotStore(tmp_path)


def fill(
    path,
    messages: int,
    *,
    term: int = 3,
    sessions: int = 0,
    configuration='{"voters":["127.0.0.1:9990"],"learners":[]}',
):
    """Load ``messages`` applied messages straight into the tables, as if
    entries 1..messages (all of ``term``) had been applied."""
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
            " WHERE i < ?) INSERT INTO consensus_appliedmessage"
            " SELECT i, 'message number ' || i FROM n",
            (messages,),
        )
        if sessions:
            # One client's session with ``sessions`` remembered answers.
            db.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                " WHERE i < ?) INSERT INTO consensus_clientanswer"
                " (client_id, seq, \"index\", term) SELECT 'client', i, i, ? FROM n",
                (sessions, term),
            )
            db.execute(
                "INSERT INTO consensus_clientsession (client_id, last_active_ms,"
                " max_seq, min_seq, answers, ended) VALUES ('client', 0, ?, 0, ?, 0)",
                (sessions, sessions),
            )
        db.execute(
            'INSERT INTO consensus_logentry ("index", term, type, command)'
            " VALUES (?, ?, 'command', 'last')",
            (messages, term),
        )
        db.execute("UPDATE consensus_persistentstate SET last_applied = ?", (messages,))
        db.execute(
            "UPDATE consensus_appliedstate SET message_count = ?, configuration = ?,"
            " configuration_index = ?",
            (messages, configuration, 1 if configuration else 0),
        )
    db.close()
