"""A data directory from before the applied-state tables gets them filled
from its log up to last_applied, as the old in-memory replay did."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from consensus.core.messages import Entry, EntryType
from consensus.models import ClientAnswer, ClientSession
from consensus.state_machine import Applied, Expired, StateMachine

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("consensus", "0001_initial")]
BEFORE_SESSIONS_END = [("consensus", "0004_appliedstate_configuration_index")]
LATEST = [("consensus", "0005_client_sessions_end")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_an_old_data_directory_gets_its_applied_state():
    old = migrate(BEFORE)
    try:
        LogEntry = old.get_model("consensus", "LogEntry")
        PersistentState = old.get_model("consensus", "PersistentState")
        config = '{"voters": ["a:1"], "learners": []}'
        rows = [
            (1, 0, "config", config, None, None),
            (2, 1, "noop", "", None, None),
            (3, 1, "command", "x", "c", 1),
            (4, 1, "command", "x", "c", 1),  # a retry: applied once
            (5, 1, "command", "count", None, None),
            (6, 1, "command", "not applied yet", None, None),
        ]
        LogEntry.objects.bulk_create(
            LogEntry(index=i, term=t, type=k, command=c, client_id=ci, seq=s)
            for i, t, k, c, ci, s in rows
        )
        PersistentState.objects.create(pk=1, current_term=1, last_applied=5)
    finally:
        migrate(LATEST)
    sm = StateMachine()
    sm.load()
    assert (sm.last_applied, sm.message_count) == (5, 2)
    assert list(sm.messages()) == ["x", "count"]
    assert sm.lookup("c", 1) == Applied(3, 1)
    assert sm._configuration == '{"voters": ["a:1"], "learners": []}'
    assert sm._configuration_index == 1


def test_sessions_from_before_they_could_end_are_kept_and_start_their_clock():
    """0005 renames the remembered answers ClientAnswer and gives each
    client a session row; they count as active at the first timestamped
    entry (not since 1970), so they end a TTL after the upgrade."""
    old = migrate(BEFORE_SESSIONS_END)
    try:
        LogEntry = old.get_model("consensus", "LogEntry")
        PersistentState = old.get_model("consensus", "PersistentState")
        AppliedState = old.get_model("consensus", "AppliedState")
        OldSession = old.get_model("consensus", "ClientSession")
        rows = [(1, "x", "c", 1), (2, "y", "c", 2), (3, "z", "d", 7)]
        LogEntry.objects.bulk_create(
            LogEntry(index=i, term=1, type="command", command=m, client_id=c, seq=s)
            for i, m, c, s in rows
        )
        OldSession.objects.bulk_create(
            OldSession(client_id=c, seq=s, index=i, term=1) for i, _, c, s in rows
        )
        PersistentState.objects.create(pk=1, current_term=1, last_applied=3)
        AppliedState.objects.create(pk=1, message_count=3)
    finally:
        migrate(LATEST)
    assert ClientAnswer.objects.count() == 3
    sessions = {
        s.client_id: (s.max_seq, s.answers, s.last_active_ms, s.ended)
        for s in ClientSession.objects.all()
    }
    assert sessions == {"c": (2, 2, 0, False), "d": (7, 1, 0, False)}
    sm = StateMachine(session_ttl_s=10)
    sm.load()
    assert sm.lookup("c", 2) == Applied(2, 1)
    t0 = 1_700_000_000_000
    first = Entry(4, 1, EntryType.COMMAND, "w", "e", 1, t0)
    assert sm.apply(first) == Applied(4, 1)
    retry = Entry(5, 1, EntryType.COMMAND, "x", "c", 1, t0 + 5000)
    assert sm.apply(retry) == Applied(1, 1)
    sm.apply(Entry(6, 1, EntryType.COMMAND, "v", "e", 2, t0 + 10_001))
    assert isinstance(sm.lookup("d", 7), Expired)  # idle since t0
    assert sm.lookup("c", 1) == Applied(1, 1)  # active at t0 + 5 s
    assert sm.message_count == 5  # x, y, z, w, v: the retry applied once
