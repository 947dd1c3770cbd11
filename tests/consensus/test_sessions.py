"""Client sessions with an end (consensus/sessions.py): the session clock,
expiry and tombstones, the bound on answers per client, refused pairs, and
answers that depend on the log alone, however it was batched."""

import logging
import random

import pytest
from django.db import connection

from consensus import sessions as sessions_module
from consensus.core.messages import Entry, EntryType
from consensus.models import (
    AppliedMessage,
    AppliedState,
    ClientAnswer,
    ClientSession,
    PersistentState,
)
from consensus.state_machine import Applied, Expired, StateMachine
from consensus.storage import Storage

from .sql_capture import captured_sql

pytestmark = pytest.mark.django_db(transaction=True)

TTL_S = 10
TTL = TTL_S * 1000  # ms
T0 = 1_700_000_000_000  # a wall clock in ms


class Log:
    """Entries in log order, numbered as they are made."""

    def __init__(self):
        self.index = 0

    def command(self, text, client_id=None, seq=None, at=0, term=1):
        self.index += 1
        return Entry(self.index, term, EntryType.COMMAND, text, client_id, seq, at)

    def noop(self, term=1):
        self.index += 1
        return Entry(self.index, term, EntryType.NOOP)


def machine(ttl_s=TTL_S, max_answers=3) -> StateMachine:
    Storage().prepare([])
    sm = StateMachine(session_ttl_s=ttl_s, max_answers=max_answers)
    sm.load()
    return sm


def ended(answer) -> bool:
    return isinstance(answer, Expired) and "has ended" in answer.detail


def too_old(answer) -> bool:
    return isinstance(answer, Expired) and "too old" in answer.detail


def test_a_retry_within_the_session_gets_the_first_answer():
    sm, log = machine(), Log()
    first = sm.apply(log.command("a", "c", 1, at=T0))
    assert first == Applied(1, 1)
    again = sm.apply(log.command("a", "c", 1, at=T0 + TTL, term=2))
    assert again == first
    assert list(sm.messages()) == ["a"]
    assert sm.lookup("c", 1) == first


def test_a_session_ends_once_idle_for_more_than_the_ttl(caplog):
    """By the session clock: another client's command moves it. A repeat of
    an ended session's pair is not applied and prints nothing; idle exactly
    the TTL is still live."""
    sm, log = machine(), Log()
    sm.apply(log.command("a", "c", 1, at=T0))
    sm.apply(log.command("b", "d", 1, at=T0 + TTL))
    assert sm.apply(log.command("a", "c", 1, at=T0 + TTL)) == Applied(1, 1)
    sm.apply(log.command("x", "d", 2, at=2 * TTL + T0 + 1))
    assert ended(sm.lookup("c", 1))
    with caplog.at_level(logging.INFO, logger="raft"):
        answer = sm.apply(log.command("count", "c", 1, at=T0 + 2 * TTL + 1))
    assert ended(answer), answer
    assert "client 'c'" in answer.detail and "not applied" in answer.detail
    assert caplog.records == []
    assert list(sm.messages()) == ["a", "b", "x"]
    assert sm.message_count == 3
    # The tombstone: no answers kept, the highest seq remembered.
    assert not ClientAnswer.objects.filter(client_id="c").exists()
    tombstone = ClientSession.objects.get(client_id="c")
    assert (tombstone.ended, tombstone.max_seq, tombstone.answers) == (True, 1, 0)


def test_the_session_clock_is_the_highest_timestamp_applied():
    """A leader whose clock is behind never moves it back, and so never
    brings an ended session back; entries without time leave it alone."""
    sm, log = machine(), Log()
    sm.apply(log.command("a", "c", 1, at=T0))
    sm.apply(log.command("b", "d", 1, at=T0 + 2 * TTL))
    assert sm.session_clock_ms == T0 + 2 * TTL
    # A lagging leader's entries: the clock stays, c stays ended.
    late = sm.apply(log.command("a", "c", 1, at=T0 + 1))
    assert ended(late)
    sm.apply(log.noop())
    sm.apply(log.command("e", "e", 1, at=T0 + 5))
    assert sm.session_clock_ms == T0 + 2 * TTL
    # e counts as active at the session clock, not at its own late time.
    assert ClientSession.objects.get(client_id="e").last_active_ms == T0 + 2 * TTL
    sm.apply(log.command("f", "f", 1, at=T0 + 3 * TTL))
    assert sm.apply(log.command("e", "e", 1, at=T0)) == Applied(5, 1)
    assert AppliedState.objects.get().session_clock_ms == T0 + 3 * TTL


def test_a_higher_seq_after_the_end_starts_a_new_session():
    """The tombstone keeps the highest seq used: a repeat at or below it is
    refused, a command above it is new (it was never applied)."""
    sm, log = machine(), Log()
    sm.apply(log.command("a", "c", 1, at=T0))
    sm.apply(log.command("b", "c", 2, at=T0))
    sm.apply(log.command("x", "d", 1, at=T0 + TTL + 1))
    assert sm.apply(log.command("c3", "c", 3, at=T0 + TTL + 1)) == Applied(4, 1)
    assert too_old(sm.apply(log.command("b", "c", 2, at=T0 + TTL + 2)))
    assert too_old(sm.lookup("c", 1))
    assert sm.apply(log.command("c3", "c", 3, at=T0 + TTL + 3)) == Applied(4, 1)
    assert list(sm.messages()) == ["a", "b", "x", "c3"]


def test_a_client_id_is_forgotten_after_twice_the_ttl():
    """Between one and two TTLs of silence a repeat is refused; after two
    the client_id is forgotten, row and all, and its pairs are new again
    (the documented limit of at-most-once)."""
    sm, log = machine(), Log()
    sm.apply(log.command("a", "c", 1, at=T0))
    sm.apply(log.command("x", "d", 1, at=T0 + 2 * TTL))
    assert ended(sm.apply(log.command("a", "c", 1, at=T0 + 2 * TTL)))
    assert ClientSession.objects.filter(client_id="c", ended=True).exists()
    sm.apply(log.command("y", "d", 2, at=T0 + 2 * TTL + 1000))
    assert sm.lookup("c", 1) is None
    # The expiry pass of that batch deleted the tombstone.
    assert not ClientSession.objects.filter(client_id="c").exists()
    assert sm.apply(log.command("a", "c", 1, at=T0 + 2 * TTL + 1000)) == Applied(5, 1)
    assert list(sm.messages()) == ["a", "x", "y", "a"]


def test_answers_beyond_the_bound_evict_the_lowest_seqs():
    sm, log = machine(max_answers=3), Log()
    for seq in range(1, 6):
        sm.apply(log.command(f"m{seq}", "c", seq, at=T0))
    assert sorted(ClientAnswer.objects.values_list("seq", flat=True)) == [3, 4, 5]
    assert ClientSession.objects.get(client_id="c").answers == 3
    refused = sm.apply(log.command("m2", "c", 2, at=T0))
    assert too_old(refused), refused
    assert "seq 3 and above" in refused.detail
    assert too_old(sm.lookup("c", 1))
    assert sm.apply(log.command("m3", "c", 3, at=T0)) == Applied(3, 1)
    # A gap above the lowest kept seq was never applied: it is new.
    sm.apply(log.command("m9", "c", 9, at=T0))
    assert sm.apply(log.command("m7", "c", 7, at=T0)) == Applied(9, 1)
    assert sorted(ClientAnswer.objects.values_list("seq", flat=True)) == [5, 7, 9]
    assert list(sm.messages()) == ["m1", "m2", "m3", "m4", "m5", "m9", "m7"]


def test_eviction_within_one_batch():
    sm, log = machine(max_answers=2), Log()
    answers = sm.apply_batch(
        [
            log.command("a", "c", 1, at=T0),
            log.command("b", "c", 2, at=T0),
            log.command("c", "c", 3, at=T0),
            log.command("a", "c", 1, at=T0),
            log.command("b", "c", 2, at=T0),
        ]
    )
    assert answers[:3] == [Applied(1, 1), Applied(2, 1), Applied(3, 1)]
    assert too_old(answers[3]) and answers[4] == Applied(2, 1)
    assert sorted(ClientAnswer.objects.values_list("seq", flat=True)) == [2, 3]


def test_the_expiry_pass_ends_clients_that_never_come_back(monkeypatch):
    """Idle sessions lose their answers and then their rows without any
    command of theirs; a pass does bounded work (here 2 clients beyond the
    entries since the last pass, which runs with every batch), and a client
    not reached yet is judged the same."""
    monkeypatch.setattr(sessions_module, "EXPIRY_MIN_CLIENTS", 2)
    monkeypatch.setattr(sessions_module, "EXPIRY_INTERVAL_MS", 0)
    sm, log = machine(), Log()
    sm.apply_batch([log.command("m", f"c{n}", 1, at=T0) for n in range(10)])
    sm.apply(log.command("x", "d", 1, at=T0 + TTL + 1))
    assert ClientSession.objects.filter(ended=True).count() == 3
    assert ClientAnswer.objects.count() == 8  # 7 idle ones not reached, and d
    # Not reached by a pass yet, refused all the same.
    assert ended(sm.lookup("c9", 1))
    assert ended(sm.apply(log.command("m", "c9", 1, at=T0 + TTL + 1)))
    for n in range(5):
        sm.apply(log.command("y", "d", n + 2, at=T0 + TTL + 2))
    assert ClientSession.objects.filter(ended=True).count() == 10
    assert list(ClientAnswer.objects.values_list("client_id", flat=True)) == ["d"] * 3
    for n in range(4):
        sm.apply(log.command("z", "d", n + 10, at=T0 + 2 * TTL + 1))
    assert list(ClientSession.objects.values_list("client_id", flat=True)) == ["d"]


def test_an_expiry_pass_is_a_few_indexed_statements():
    """No scan of the sessions: a pass that expires nothing is two indexed
    statements, whatever the batch's size, and runs once the session clock
    has moved a second since the last."""
    sm, log = machine(), Log()

    def expiry_statements(at):
        batch = [log.command("m", f"c{log.index}", 1, at=at) for _ in range(50)]
        with captured_sql() as statements:
            sm.apply_batch(batch)
        return [sql for sql in statements if '_ms" <' in sql]

    sm.apply(log.command("first", "a", 1, at=T0))  # the clock starts: a pass
    assert expiry_statements(T0 + 999) == []
    assert len(expiry_statements(T0 + 1000)) == 2
    assert expiry_statements(T0 + 1999) == []
    assert len(expiry_statements(T0 + 5000)) == 2
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sessions_module._SELECT_IDLE, [0, 10])
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "USING INDEX session_expiry" in plan, plan


def test_a_batch_reads_its_clients_sessions_in_one_statement():
    """Applying, and the leader's look-up before it appends, read the rows
    of all of a batch's clients at once, not one statement per client."""
    sm, log = machine(), Log()
    sm.apply_batch([log.command("m", f"c{i}", 1, at=T0) for i in range(50)])
    pairs = [(f"c{i}", 2) for i in range(60)]

    def session_reads(action):
        with captured_sql() as statements:
            action()
        return [
            sql
            for sql in statements
            if sql.startswith("SELECT") and "clientsession" in sql
        ]

    assert len(session_reads(lambda: sm.lookup_many(pairs))) == 1
    batch = [log.command("m", client, seq, at=T0 + 1) for client, seq in pairs]
    assert len(session_reads(lambda: sm.apply_batch(batch))) == 1
    assert sm.lookup_many(pairs) == [Applied(51 + i, 1) for i in range(60)]


def test_sessions_from_before_the_clock_start_when_it_does():
    """Entries without time (an upgraded data directory, an older leader)
    leave the clock at 0; the first timestamp makes every session active
    then, so none ends at once."""
    sm, log = machine(), Log()
    sm.apply(log.command("a", "c", 1))
    assert sm.session_clock_ms == 0
    sm.apply(log.command("b", "d", 1, at=T0))
    assert sm.apply(log.command("a", "c", 1, at=T0 + TTL)) == Applied(1, 1)
    sm.apply(log.command("b", "d", 2, at=T0 + 2 * TTL + 1))
    assert ended(sm.lookup("c", 1))


def test_the_sessions_survive_a_restart():
    """Everything is on disk: a new state machine on the database answers
    as the old one would have."""
    sm, log = machine(), Log()
    sm.apply_batch(
        [log.command("a", "c", 1, at=T0), log.command("b", "d", 1, at=T0 + 5)]
    )
    again = machine()
    assert again.session_clock_ms == T0 + 5
    assert again.lookup("c", 1) == Applied(1, 1)
    assert again.apply(log.command("a", "c", 1, at=T0 + 6)) == Applied(1, 1)
    again.apply(log.command("x", "d", 2, at=T0 + TTL + 7))
    third = machine()
    assert ended(third.lookup("c", 1))
    assert ended(third.apply(log.command("a", "c", 1, at=T0 + TTL + 7)))


def test_limits_are_checked():
    with pytest.raises(ValueError):
        StateMachine(session_ttl_s=0)
    with pytest.raises(ValueError):
        StateMachine(max_answers=0)


# --- the same log, the same answers ------------------------------------------


class Model:
    """The rules of consensus/sessions.py in plain dicts, one entry at a
    time: what every server must answer."""

    def __init__(self, ttl_ms, max_answers):
        self.ttl, self.max = ttl_ms, max_answers
        self.clock = 0
        self.clients = {}
        self.messages = []

    def apply(self, e: Entry):
        if e.timestamp_ms > self.clock:
            if self.clock <= 0:
                for c in self.clients.values():
                    c["last"] = max(c["last"], e.timestamp_ms)
            self.clock = e.timestamp_ms
        if e.type is not EntryType.COMMAND:
            return ("applied", e.index, e.term)
        if e.client_id is not None:
            c = self.clients.get(e.client_id)
            if c is not None:
                idle = self.clock - c["last"]
                if idle > 2 * self.ttl:
                    del self.clients[e.client_id]
                    c = None
                elif idle > self.ttl and not c["ended"]:
                    c.update(ended=True, min=c["max"] + 1, answers={})
            if c is not None:
                if e.seq < c["min"]:
                    return ("ended" if c["ended"] else "too old",)
                if e.seq in c["answers"]:
                    c["last"] = self.clock
                    return ("applied", *c["answers"][e.seq])
            if c is None:
                c = self.clients[e.client_id] = {
                    "max": e.seq,
                    "min": min(e.seq, 0),
                    "answers": {},
                }
            c.update(ended=False, last=self.clock, max=max(c["max"], e.seq))
            c["answers"][e.seq] = (e.index, e.term)
            while len(c["answers"]) > self.max:
                lowest = min(c["answers"])
                del c["answers"][lowest]
                c["min"] = lowest + 1
        self.messages.append(e.command)
        return ("applied", e.index, e.term)


def outcome(answer):
    if isinstance(answer, Applied):
        return ("applied", answer.index, answer.term)
    return ("ended",) if ended(answer) else ("too old",)


def random_log(rng: random.Random, n: int) -> list[Entry]:
    """Commands of a few clients: new seqs, retries, gaps; time mostly
    going on, sometimes jumping past one or two TTLs, sometimes behind."""
    log, now, next_seq = Log(), 0, {}
    entries = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05:
            entries.append(log.noop())
            continue
        now = now or (T0 if rng.random() < 0.9 else 0)
        now += rng.choices(
            [0, 1, 100, 1000, TTL // 2, TTL, TTL + 1, 2 * TTL + 1],
            weights=[20, 20, 20, 20, 5, 2, 2, 1],
        )[0]
        at = now - rng.choice([0] * 9 + [TTL]) if now else 0
        if roll < 0.15:
            entries.append(log.command(f"plain{log.index + 1}", at=at))
            continue
        client = f"c{rng.randrange(4)}"
        top = next_seq.get(client, 0)
        if top and rng.random() < 0.4:
            seq = rng.randint(max(0, top - 6), top)  # a retry, maybe old
        else:
            seq = top + rng.choice([1, 1, 1, 2, 5])
            next_seq[client] = seq
        entries.append(log.command(f"{client}#{seq}", client, seq, at=at))
    return entries


def reset_applied_state():
    AppliedMessage.objects.all().delete()
    ClientAnswer.objects.all().delete()
    ClientSession.objects.all().delete()
    AppliedState.objects.all().delete()
    PersistentState.objects.update(last_applied=0)


def run(entries, batches, max_answers, rng=None):
    """Apply ``entries`` in batches of the given sizes; the answers, the
    messages and what every pair would answer afterwards."""
    reset_applied_state()
    sm = machine(max_answers=max_answers)
    answers, position = [], 0
    for size in batches:
        answers += sm.apply_batch(entries[position : position + size])
        position += size
    assert position == len(entries)
    pairs = {(e.client_id, e.seq) for e in entries if e.client_id is not None}
    after = {pair: sm.lookup(*pair) for pair in sorted(pairs)}
    # The leader's look-up of a whole batch answers each pair alike.
    assert sm.lookup_many(sorted(pairs) + [(None, None)]) == [*after.values(), None]
    return [outcome(a) for a in answers], list(sm.messages()), after


def random_batches(rng, n):
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(rng.choice([1, 2, 3, 7, 20]), n - sum(sizes)))
    return sizes


@pytest.mark.parametrize("seed", range(4))
def test_the_same_entries_give_the_same_answers_however_batched(seed, monkeypatch):
    """Two state machines fed the same entries, one entry per batch and in
    random batches with an expiry pass that lags behind, answer every
    entry alike, as the model does, and end in the same state."""
    rng = random.Random(seed)
    entries = random_log(rng, 250)
    model = Model(TTL, 3)
    expected = [model.apply(e) for e in entries]
    one_by_one = run(entries, [1] * len(entries), 3)
    monkeypatch.setattr(sessions_module, "EXPIRY_MIN_CLIENTS", 0)
    monkeypatch.setattr(sessions_module, "EXPIRY_INTERVAL_MS", 0)
    batched = run(entries, random_batches(rng, len(entries)), 3)
    assert one_by_one[0] == expected
    assert batched == one_by_one
    assert one_by_one[1] == model.messages
    kinds = {a[0] for a in expected}
    assert kinds == {"applied", "ended", "too old"}, kinds
