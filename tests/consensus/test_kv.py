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
