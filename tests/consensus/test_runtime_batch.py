"""NodeRuntime._run_once, stepped directly: one batch of inbox items becomes
one Ready, carried out by apply_ready with fake Storage and Transport.

No threads run: the test puts items on the inbox and calls _run_once, which
never blocks because the inbox is never empty when it is called.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryType,
    Message,
    RequestVote,
    RequestVoteReply,
)
from consensus.core.node import Proposal
from consensus.core.ready import HardState, Ready, Role
from consensus.errors import CommandLost, NotLeader, SessionExpired
from consensus.runtime import (
    NodeRuntime,
    RuntimeSettings,
    _Call,
    _Incoming,
    _Propose,
    _Stop,
    _Tick,
)
from consensus.slots import Slot as _Slot
from consensus.state_machine import Applied, Expired
from consensus.storage import Restored

A, B, C, D, E = (f"10.0.0.{i}:9990" for i in range(1, 6))
CLUSTER = [A, B, C, D, E]
PEERS = CLUSTER[1:]


class FakeStorage:
    """The Storage protocol in memory; every save is an event."""

    def __init__(self, events: list):
        self.events = events
        self.hard_state = HardState()
        self.log: list[Entry] = []
        self.last_applied = 0
        self.closed = False

    @property
    def last_index(self) -> int:
        return len(self.log)

    def prepare(self, bootstrap: Sequence[Entry]) -> Restored:
        self.log = list(bootstrap)
        return Restored(self.hard_state, list(self.log), self.last_applied)

    def save(self, hard_state, entries, last_applied) -> None:
        self.events.append(("save", hard_state, [e.index for e in entries]))
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            del self.log[entries[0].index - 1 :]
            self.log.extend(entries)
        if last_applied is not None:
            self.last_applied = last_applied

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    def __init__(self, events: list):
        self.events = events

    def send(self, message: Message) -> None:
        self.events.append(("send", message))

    def retain(self, peers) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingStateMachine:
    """consensus.state_machine.StateMachine's face to the runtime, in memory
    (its own tests run it on SQLite); every apply is an event."""

    def __init__(self, events: list):
        self.events = events
        self.last_applied = 0
        self._sessions: dict[tuple[str, int], Applied | Expired] = {}

    def load(self) -> None:
        pass

    def lookup(self, client_id, seq) -> Applied | Expired | None:
        return self._sessions.get((client_id, seq))

    def apply(self, entry: Entry) -> Applied | Expired:
        self.events.append(("apply", entry.index))
        assert entry.index == self.last_applied + 1
        self.last_applied = entry.index
        answer = Applied(entry.index, entry.term)
        if entry.client_id is not None and entry.seq is not None:
            answer = self._sessions.setdefault((entry.client_id, entry.seq), answer)
        return answer


class RecordingSlot(_Slot):
    """A slot that notes, among the other events, when it is set."""

    def __init__(self, events: list, name: str):
        super().__init__()
        self.events, self.name = events, name

    def set(self, value=None, error=None) -> None:
        self.events.append(("answer", self.name))
        super().set(value, error)

    @property
    def done(self) -> bool:
        return self.wait(0)


class Harness:
    def __init__(self, cluster: Sequence[str] = CLUSTER):
        self.events: list = []
        self.storage = FakeStorage(self.events)
        self.runtime = NodeRuntime(
            A,
            list(cluster),
            RuntimeSettings(rng_seed=1),
            storage=self.storage,
            transport=FakeTransport(self.events),
            state_machine=RecordingStateMachine(self.events),
        )
        self.runtime.open()
        self.peers = [id for id in cluster if id != A]

    @property
    def node(self):
        return self.runtime._node

    @property
    def status(self):
        return self.node.status()

    def run(self, *items) -> list:
        """Put ``items`` on the inbox and run one batch; its events."""
        for item in items:
            self.runtime._inbox.put(item)
        start = len(self.events)
        assert self.runtime._run_once()
        return self.events[start:]

    def slot(self, name: str) -> RecordingSlot:
        return RecordingSlot(self.events, name)

    def propose(self, command: str, client_id=None, seq=None) -> _Propose:
        return _Propose(Proposal(command, client_id, seq), self.slot(command))

    def elect(self) -> None:
        """Tick until A campaigns; every peer grants the pre-vote and the
        vote, and acknowledges the leader's first AppendEntries."""
        for _ in range(100):
            events = self.run(_Tick())
            if requests := sent(events, RequestVote):
                break
        else:
            raise AssertionError("A never campaigned")
        while requests:
            events = self.run(*(incoming(granted(r)) for r in requests))
            requests = sent(events, RequestVote)
        assert self.status.role is Role.LEADER
        self.acknowledge(sent(events, AppendEntries))
        assert self.status.commit_index == self.status.last_log_index

    def acknowledge(self, appends: Sequence[AppendEntries]) -> list:
        return self.run(*(incoming(accepted(m)) for m in appends))


def sent(events: list, kind: type = Message) -> list:
    return [e[1] for e in events if e[0] == "send" and isinstance(e[1], kind)]


def incoming(message: Message, slot: _Slot | None = None) -> _Incoming:
    return _Incoming(message, slot)


def granted(request: RequestVote) -> RequestVoteReply:
    return RequestVoteReply(
        request.term, request.dest, request.source, True, request.pre_vote
    )


def accepted(request: AppendEntries) -> AppendEntriesReply:
    return AppendEntriesReply(
        request.term,
        request.dest,
        request.source,
        success=True,
        match_index=request.prev_log_index + len(request.entries),
        prev_log_index=request.prev_log_index,
        request_term=request.term,
        request_id=request.request_id,
    )


def kinds(events: list) -> list[str]:
    return [e[0] for e in events]


class NodeSpy:
    """Records the order of calls into the RaftNode."""

    def __init__(self, node, calls: list):
        self._node, self.calls = node, calls

    def __getattr__(self, name):
        return getattr(self._node, name)

    def propose(self, proposals):
        self.calls.append(("propose", [p.command for p in proposals]))
        return self._node.propose(proposals)

    def tick(self):
        self.calls.append(("tick",))
        return self._node.tick()

    def step(self, message):
        self.calls.append(("step", type(message).__name__))
        return self._node.step(message)


# --- the batch ---------------------------------------------------------------


def test_proposals_are_proposed_first_and_together():
    """Proposals of a batch go to the core in one call before its ticks and
    messages, so a reply stepped in the same batch carries them at once."""
    h = Harness()
    h.elect()
    calls = []
    h.runtime._node = NodeSpy(h.node, calls)
    reply = accepted(AppendEntries(1, A, B, 2, 1))
    h.run(_Tick(), h.propose("x"), incoming(reply), h.propose("y"))
    assert calls == [
        ("propose", ["x", "y"]),
        ("tick",),
        ("step", "AppendEntriesReply"),
    ]


def test_append_entries_leave_before_the_save_and_votes_after():
    """Dissertation §10.2.1: a leader's AppendEntries may go out while it
    writes the same entries; a message that needs a new term or vote on
    disk (a candidate's RequestVote) waits for the save."""
    h = Harness()
    for _ in range(100):
        events = h.run(_Tick())
        if sent(events, RequestVote):
            break
    pre_votes = sent(events, RequestVote)
    assert all(m.pre_vote for m in pre_votes)
    events = h.run(*(incoming(granted(m)) for m in pre_votes))
    # The real campaign writes the new term and vote before asking anyone.
    assert kinds(events)[:2] == ["save", "send"]
    assert events[0][1] == HardState(h.status.term, A)
    events = h.run(*(incoming(granted(m)) for m in sent(events, RequestVote)))
    h.acknowledge(sent(events, AppendEntries))

    events = h.run(h.propose("x"))
    index = h.status.last_log_index
    # To the voters a commit needs (thrifty replication: with the leader,
    # a majority), then the save.
    needed = (len(h.peers) + 1) // 2
    assert kinds(events) == ["send"] * needed + ["save"]
    assert events[-1] == ("save", None, [index])
    assert all(m.entries[-1].index == index for m in sent(events))


def test_a_requests_reply_goes_back_through_its_slot_after_the_save():
    """Raft Figure 2: the reply to an AppendEntries is handed to the waiting
    HTTP request only once the entries are on disk, and it is not also
    sent as a message."""
    h = Harness()
    entry = Entry(2, 1, EntryType.NOOP)
    request = AppendEntries(1, B, A, 1, 0, (entry,), leader_commit=1)
    slot = h.slot("B's request")
    events = h.run(incoming(request, slot))
    assert kinds(events) == ["save", "answer", "apply"]
    assert events[0] == ("save", HardState(1, None), [2])
    assert not sent(events)
    assert slot.value == AppendEntriesReply(
        1, A, B, success=True, match_index=2, prev_log_index=1, request_term=1
    )
    assert h.storage.log[-1] == entry


def test_a_committed_entry_wakes_its_waiter():
    h = Harness()
    h.elect()
    item = h.propose("x")
    events = h.run(item)
    assert not item.slot.done
    index = h.status.last_log_index
    events = h.acknowledge(sent(events, AppendEntries))
    # Applied (and last_applied saved with the commit) before the answer.
    assert kinds(events) == ["save", "apply", "answer"]
    assert h.storage.last_applied == index
    assert item.slot.value == Applied(index, h.status.term)
    assert index not in h.runtime._waiters


def test_a_call_runs_on_the_loop_and_its_ready_is_carried_out():
    h = Harness()
    h.elect()
    slot = h.slot("call")

    def transfer(node):
        return "started", node.transfer_leadership(B)

    events = h.run(_Call(transfer, slot))
    assert slot.value == "started"
    assert sent(events), "the transfer's message goes out with the batch"


def test_stop_ends_the_loop():
    h = Harness()
    h.runtime._inbox.put(_Tick())
    h.runtime._inbox.put(_Stop())
    h.runtime._inbox.put(_Tick())
    assert h.runtime._run_once() is False


def test_not_leader_answers_every_fresh_proposal():
    h = Harness()
    heartbeat = AppendEntries(1, B, A, 1, 0, leader_commit=1)
    h.run(incoming(heartbeat, h.slot("heartbeat")))
    first, second = h.propose("x"), h.propose("y")
    events = h.run(first, second)
    for item in (first, second):
        assert isinstance(item.slot.error, NotLeader)
        assert item.slot.error.leader_id == B
    assert "save" not in kinds(events)


def test_a_repeated_client_id_and_seq_gets_the_first_answer():
    """Dissertation §6.3: a retry of an applied (client_id, seq) is answered
    from the session, and nothing new is appended."""
    h = Harness()
    h.elect()
    first = h.propose("x", client_id="c", seq=1)
    h.acknowledge(sent(h.run(first), AppendEntries))
    last_index = h.status.last_log_index
    repeat = h.propose("x", client_id="c", seq=1)
    events = h.run(repeat)
    assert repeat.slot.value == first.slot.value == Applied(last_index, 1)
    assert h.status.last_log_index == last_index
    assert "save" not in kinds(events)


class Submitter:
    """NodeRuntime.submit_command on a thread of its own, as a request
    thread calls it, while the test steps the loop."""

    def __init__(self, runtime: NodeRuntime, *args):
        self.result = self.error = None

        def submit():
            try:
                self.result = runtime.submit_command(*args, timeout=5)
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                self.error = exc

        self.thread = threading.Thread(target=submit, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self


def test_a_follower_forwards_a_pair_rather_than_answer_it_from_its_state():
    """Its applied state may lag behind the entry that ended the pair's
    session: only the leader answers a pair without appending."""
    h = Harness()
    h.runtime._state_machine._sessions[("c", 1)] = Applied(1, 0)
    heartbeat = AppendEntries(1, B, A, 1, 0, leader_commit=1)
    h.run(incoming(heartbeat, h.slot("heartbeat")))
    repeat = h.propose("x", client_id="c", seq=1)
    h.run(repeat)
    assert isinstance(repeat.slot.error, NotLeader)
    assert repeat.slot.error.leader_id == B


def test_a_command_carries_the_leaders_wall_clock(monkeypatch):
    """The runtime stamps each proposal; the core copies the time into the
    entry it appends (sessions end by it)."""
    monkeypatch.setattr("consensus.runtime_submit.wall_clock_ms", lambda: 1_234_567)
    h = Harness()
    h.elect()
    submitter = Submitter(h.runtime, "x", "c", 1)
    events = h.run()  # blocks until the proposal is on the inbox
    entry = h.storage.log[-1]
    assert (entry.command, entry.client_id, entry.seq) == ("x", "c", 1)
    assert entry.timestamp_ms == 1_234_567
    h.acknowledge(sent(events, AppendEntries))
    assert submitter.join().result.index == entry.index


def test_a_pair_whose_session_ended_is_refused_without_appending():
    """The leader's pre-check: a pair the state machine answers Expired is
    refused at once (SessionExpired, a 409 at the API), nothing appended."""
    h = Harness()
    h.elect()
    h.runtime._state_machine._sessions[("c", 1)] = Expired("session ended")
    last_index = h.status.last_log_index
    submitter = Submitter(h.runtime, "x", "c", 1)
    events = h.run()
    assert isinstance(submitter.join().error, SessionExpired)
    assert str(submitter.error) == "session ended"
    assert h.status.last_log_index == last_index
    assert "save" not in kinds(events)


def test_an_entry_refused_when_applied_raises_session_expired():
    """The state machine has the last word: an entry it answers Expired (its
    session ended while it was in flight) ends the wait with SessionExpired."""
    h = Harness()
    h.elect()
    submitter = Submitter(h.runtime, "x", "c", 1)
    events = h.run()
    h.runtime._state_machine._sessions[("c", 1)] = Expired("ended meanwhile")
    h.acknowledge(sent(events, AppendEntries))
    assert str(submitter.join().error) == "ended meanwhile"


# --- entries of ours that another leader's replace ---------------------------


def test_a_waiter_replaced_by_a_newer_term_entry_is_told_lost_at_its_commit():
    """A leader deposed before its entries commit, then re-elected, reuses
    their indexes. The client of the entry it replaced must hear
    CommandLost as soon as the new entry commits (known: a different entry
    holds the index), not wait for its request to time out."""
    h = Harness()
    h.elect()  # term 1: log 1 (configuration), 2 (NOOP), committed
    old = [h.propose(f"old{i}") for i in (3, 4, 5)]
    h.run(*old)  # indexes 3..5 of term 1, never replicated
    # B leads term 2 and overwrites index 3 on: A's log is now 1..3.
    noop = Entry(3, 2, EntryType.NOOP)
    h.run(incoming(AppendEntries(2, B, A, 2, 1, (noop,), 2), h.slot("B")))
    assert [e.term for e in h.storage.log] == [0, 1, 2]
    assert not any(item.slot.done for item in old)
    # A is elected again (term 3): NOOP at 4, then a new command at index 5.
    h.elect()
    new = h.propose("new")
    events = h.run(new)
    assert h.status.last_log_index == 5
    h.acknowledge(sent(events, AppendEntries))
    assert new.slot.value == Applied(5, 3)
    for item in old:
        assert item.slot.done, f"{item.proposal.command} left waiting"
        assert isinstance(item.slot.error, CommandLost)


def test_an_overwritten_entry_may_still_commit_figure_8():
    """Raft Figure 8: an entry of ours overwritten by one leader can come
    back from another that holds it and commit. So an overwrite alone does
    not make an entry lost; the waiter is answered when its index commits."""
    h = Harness()
    h.elect()  # term 1
    item = h.propose("x")
    h.run(item)  # (3, 1), also on B, say
    # C leads term 2 with D and E, and overwrites index 3 here.
    overwrite = AppendEntries(2, C, A, 2, 1, (Entry(3, 2, EntryType.NOOP),), 2)
    h.run(incoming(overwrite, h.slot("C")))
    assert h.storage.log[-1].term == 2
    assert not item.slot.done
    # B, holding (3, 1), leads term 3 with D and E and commits it.
    ours = Entry(3, 1, EntryType.COMMAND, "x")
    noop = Entry(4, 3, EntryType.NOOP)
    h.run(incoming(AppendEntries(3, B, A, 2, 1, (ours, noop), 4), h.slot("B")))
    assert item.slot.error is None
    assert item.slot.value == Applied(3, 1)


def test_an_entry_replaced_in_a_follower_log_is_lost_when_the_index_commits():
    h = Harness()
    h.elect()  # term 1
    item = h.propose("x")
    h.run(item)
    noop = Entry(3, 2, EntryType.NOOP)
    h.run(incoming(AppendEntries(2, B, A, 2, 1, (noop,), 3), h.slot("B")))
    assert isinstance(item.slot.error, CommandLost)


def test_ready_path_types():
    """The fakes satisfy the protocols apply_ready is written against."""
    from consensus import ready_path

    events: list = []
    answers = ready_path.apply_ready(
        Ready(committed_entries=[Entry(1, 0, EntryType.NOOP)]),
        FakeStorage(events),
        FakeTransport(events),
        RecordingStateMachine(events),
    )
    assert answers == [Applied(1, 0)]
    assert kinds(events) == ["save", "apply"]


def test_call_in_loop_runs_on_the_loop_with_its_batch():
    h = Harness()
    ran = []
    h.runtime.call_in_loop(lambda: ran.append("ran"))
    assert ran == []  # nothing runs until the loop takes it
    assert h.runtime._run_once()
    assert ran == ["ran"]
