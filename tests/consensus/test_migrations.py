"""A data directory from before the applied-state tables gets them filled
from its log up to last_applied, as the old in-memory replay did."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from consensus.state_machine import Applied, StateMachine

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("consensus", "0001_initial")]
LATEST = [("consensus", "0004_appliedstate_configuration_index")]


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
