"""consensus.kv through the state machine: puts and deletes with their
revisions and history, compare-and-set, at most once per client pair, and
the reads' view of one applied index."""

import pytest

from consensus import kv
from consensus.core.messages import Entry, EntryType
from consensus.models import KeyEvent, KeyValue
from consensus.state_machine import Applied, Refused, StateMachine
from consensus.storage import Storage

pytestmark = pytest.mark.django_db(transaction=True)


class Log:
    def __init__(self, window=kv.HISTORY_ENTRIES):
        Storage().prepare([])  # PersistentState: reads see last_applied
        self.sm = StateMachine(kv_history_entries=window)
        self.sm.load()

    def apply(self, command, type_=EntryType.KV, client_id=None, seq=None):
        index = self.sm.last_applied + 1
        return self.sm.apply(Entry(index, 2, type_, command, client_id, seq))


def test_put_and_delete_set_revisions_and_record_history():
    log = Log()
    assert log.apply(kv.put_op("a", "1")) == Applied(1, 2)
    assert log.apply(kv.put_op("b", "2")) == Applied(2, 2)
    assert log.apply(kv.put_op("a", "3")) == Applied(3, 2)
    item, applied = kv.get("a")
    assert (item.value, item.revision, applied) == ("3", 3, 3)
    assert log.apply(kv.delete_op("b")) == Applied(4, 2)
    assert kv.get("b") == (None, 4)
    events, covered, floor = kv.events("", 0, 100, kv.HISTORY_ENTRIES)
    assert [(e.type, e.key, e.value, e.revision) for e in events] == [
        ("put", "a", "1", 1),
        ("put", "b", "2", 2),
        ("put", "a", "3", 3),
        ("delete", "b", None, 4),
    ]
    assert (covered, floor) == (4, 0)


def test_compare_and_set_changes_nothing_when_the_revision_differs():
    log = Log()
    assert log.apply(kv.put_op("k", "v", prev=0)) == Applied(1, 2)
    refused = log.apply(kv.put_op("k", "w", prev=0))
    assert isinstance(refused, Refused) and refused.reason == "precondition_failed"
    assert refused.current_revision == 1
    assert kv.get("k")[0].value == "v"
    assert log.apply(kv.put_op("k", "w", prev=1)) == Applied(3, 2)
    refused = log.apply(kv.delete_op("k", prev=1))
    assert refused.current_revision == 3
    absent = log.apply(kv.delete_op("nothing"))
    assert isinstance(absent, Refused) and absent.reason == "not_found"
    assert KeyEvent.objects.count() == 2  # the refused changed nothing


def test_a_client_pair_applies_once_and_a_refusal_is_not_remembered():
    log = Log()
    first = log.apply(kv.put_op("k", "v"), client_id="c", seq=1)
    again = log.apply(kv.put_op("k", "v"), client_id="c", seq=1)
    assert first == again == Applied(1, 2)
    assert KeyValue.objects.get().revision == 1
    failed = log.apply(kv.put_op("k", "x", prev=0), client_id="c", seq=2)
    assert isinstance(failed, Refused)
    # The retry is judged afresh: still refused, never answered "applied".
    retry = log.apply(kv.put_op("k", "x", prev=0), client_id="c", seq=2)
    assert isinstance(retry, Refused)


@pytest.mark.parametrize(
    "command",
    ["not json", '{"op": "drop"}', '{"op": "put", "key": "", "value": "v"}',
     '{"op": "put", "key": "k", "value": 5}', '{"op": "put", "key": "k",'
     ' "value": "v", "prev": "1"}', '{"op": "delete", "key": "\\udfff"}'],
)  # fmt: skip
def test_a_malformed_operation_is_refused(command):
    log = Log()
    answer = log.apply(command)
    assert isinstance(answer, Refused)
    assert not KeyValue.objects.exists() and log.sm.last_applied == 1


def test_history_keeps_a_window_of_log_indexes():
    log = Log(window=3)
    for n in range(6):
        log.apply(kv.put_op(f"k{n}", "v"))
    events, covered, floor = kv.events("", 0, 100, 3)
    assert [e.revision for e in events] == [4, 5, 6]
    assert (covered, floor) == (6, 3)


def test_list_in_byte_order_with_prefix_and_after():
    log = Log()
    for key in ["p/b", "p/a", "p/é", "p/Z", "q", "p"]:
        log.apply(kv.put_op(key, key))
    found, more, applied = kv.items("p/", None, 10)
    assert [i.key for i in found] == ["p/Z", "p/a", "p/b", "p/é"]
    assert (more, applied) == (False, 6)
    page, more, _ = kv.items("p/", "p/a", 1)
    assert [i.key for i in page] == ["p/b"] and more


@pytest.mark.parametrize("key", ["", "k" * 513, "a\U0010ffffb", "\udfff"])
def test_check_key_refuses(key):
    with pytest.raises(kv.InvalidKey):
        kv.check_key(key)


def test_history_is_forgotten_in_steps_and_never_read_below_its_floor(monkeypatch):
    monkeypatch.setattr(kv, "FORGET_STEP", 4)
    log = Log(window=5)
    for n in range(12):
        log.apply(kv.put_op(f"k{n}", "v"))
    # Applied 12, window 5: the floor is 7, the stored events start above
    # the step below it (4); the reads start above the floor all the same.
    assert sorted(KeyEvent.objects.values_list("revision", flat=True)) == list(
        range(5, 13)
    )
    events, covered, floor = kv.events("", 0, 100, 5)
    assert [e.revision for e in events] == [8, 9, 10, 11, 12]
    assert (covered, floor) == (12, 7)
    # One DELETE per step: none while the floor stays in a step.
    deletes = []
    real = kv.forget_history
    monkeypatch.setattr(
        kv, "forget_history", lambda *a: deletes.append(a[1]) or real(*a)
    )
    for n in range(12, 20):
        log.apply(kv.put_op(f"k{n}", "v"))
    assert deletes == [13, 17]  # applied 13 (floor 8) and 17 (floor 12)


def test_a_restart_forgets_to_the_same_floor(monkeypatch):
    monkeypatch.setattr(kv, "FORGET_STEP", 4)
    log = Log(window=5)
    for n in range(10):
        log.apply(kv.put_op(f"k{n}", "v"))
    KeyEvent.objects.create(revision=1, type="put", key="stale", value="x")
    log.sm.load()  # what a start or a snapshot's restore runs
    log.apply(kv.put_op("k10", "v"))
    # Applied 11: floor 6, step floor 4, whatever this process did before.
    assert min(KeyEvent.objects.values_list("revision", flat=True)) == 5
