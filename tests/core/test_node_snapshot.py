"""Snapshots (Raft §7, dissertation chapter 5): the InstallSnapshot receiver
rules of Figure 5.3, the configuration a snapshot carries (Figure 5.1),
compaction, and a leader switching a peer to InstallSnapshot and back."""

import pytest

from consensus.core.configuration import Configuration
from consensus.core.messages import (
    AppendEntries,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
    SnapshotMetadata,
    Unreachable,
)
from consensus.core.ready import HardState, Ready, Role

from .test_node_helpers import ELECTION_TICKS, Net, config_entry, log_of, make_node
from .test_node_leadership import assert_configuration_as_if_recomputed

ABC = ["a", "b", "c"]
VOTERS = ["leader", "f", "g"]
CONFIGURATION = Configuration(frozenset(VOTERS))


def install_snapshot(term, last_included_index, last_included_term, request_id=7):
    return InstallSnapshot(
        term,
        "leader",
        "f",
        last_included_index,
        last_included_term,
        configuration_index=1,
        configuration=CONFIGURATION,
        request_id=request_id,
    )


def follower(terms, current_term=None, last_applied=0):
    """A follower "f" whose log holds one entry per term given."""
    current_term = current_term if current_term is not None else max(terms)
    return make_node(
        "f",
        log_of(VOTERS, terms),
        hard_state=HardState(current_term),
        last_applied=last_applied,
    )


def only_reply(ready):
    assert len(ready.messages) == 1, ready.messages
    reply = ready.messages[0]
    assert isinstance(reply, InstallSnapshotReply) and reply.dest == "leader"
    return reply


# The follower's side (dissertation Figure 5.3, InstallSnapshot receiver).


def test_figure_5_3_rule_1_a_stale_term_is_refused():
    """Reply immediately if term < currentTerm: nothing changes."""
    node = follower([1, 1, 2], current_term=5)
    ready = node.step(install_snapshot(4, 3, 2))
    reply = only_reply(ready)
    assert (reply.term, reply.request_term, reply.request_id) == (5, 4, 7)
    assert ready.snapshot is None
    assert (node.log.last_index, node.commit_index) == (3, 0)


def test_figure_5_3_rule_6_a_matching_entry_keeps_the_log_after_it():
    """The log holds the snapshot's last entry: its entries are kept (the
    following ones too) and applied from the log, not restored."""
    node = follower([1, 1, 2, 2, 3])
    ready = node.step(install_snapshot(3, 3, 2))
    assert ready.snapshot is None and not ready.entries_to_persist
    assert [e.index for e in ready.committed_entries] == [1, 2, 3]
    assert (node.log.last_index, node.commit_index, node.last_applied) == (5, 3, 3)
    reply = only_reply(ready)
    assert (reply.term, reply.last_included_index) == (3, 3)


def test_figure_5_3_rules_7_8_a_conflicting_log_is_discarded():
    """The snapshot's last entry is not in the log (here: another term): the
    entire log goes, the state machine is restored from the snapshot, and
    its configuration rules."""
    node = follower([1, 1, 2, 2, 3])
    ready = node.step(install_snapshot(4, 4, 4))
    assert ready.snapshot == SnapshotMetadata(4, 4, 1, CONFIGURATION)
    assert ready.hard_state == HardState(4, None)
    assert not ready.committed_entries and not ready.entries_to_persist
    assert (node.log.snapshot_index, node.log.last_index, len(node.log)) == (4, 4, 0)
    assert (node.commit_index, node.last_applied) == (4, 4)
    assert (node.log.last_term, node.leader_id) == (4, "leader")
    status = node.status()
    assert (status.configuration, status.snapshot_index) == (CONFIGURATION, 4)
    assert only_reply(ready).last_included_index == 4


def test_a_snapshot_past_a_short_log_discards_it():
    node = follower([1, 1])
    ready = node.step(install_snapshot(2, 6, 2))
    assert ready.snapshot is not None
    assert (node.log.last_index, node.log.last_term) == (6, 2)


def test_an_older_snapshot_is_acknowledged_without_being_restored():
    """Never go back on commit or apply: a snapshot no newer than
    commit_index holds nothing new."""
    node = follower([1, 1, 2, 2, 3], last_applied=4)
    ready = node.step(install_snapshot(3, 3, 1))  # even one that conflicts
    assert ready.snapshot is None and not ready.committed_entries
    assert (node.log.last_index, node.commit_index, node.last_applied) == (5, 4, 4)
    reply = only_reply(ready)
    assert (reply.term, reply.last_included_index) == (3, 3)


def test_a_candidate_of_the_same_term_follows_the_snapshots_leader():
    node = make_node(
        "f", log_of(VOTERS, [1, 1]), hard_state=HardState(2), pre_vote=False
    )
    while node.role is not Role.CANDIDATE:
        node.tick()
    term = node.current_term
    ready = node.step(install_snapshot(term, 5, term))
    assert (node.role, node.leader_id) == (Role.FOLLOWER, "leader")
    assert ready.snapshot is not None


# The configuration a snapshot carries (dissertation §5.1, Figure 5.1).


def test_the_configuration_is_the_snapshots_until_the_log_holds_a_later_one():
    abc = Configuration(frozenset(ABC))
    snapshot = SnapshotMetadata(5, 2, 3, abc)
    node = make_node("a", [Entry(6, 2), Entry(7, 3)], snapshot=snapshot)
    status = node.status()
    assert (status.configuration, status.configuration_index) == (abc, 3)
    assert node.role is Role.FOLLOWER
    # A later CONFIG entry rules, and truncating it reverts to the snapshot's.
    node = make_node(
        "a",
        [Entry(6, 2), config_entry(["a", "b"], index=7, term=3)],
        snapshot=snapshot,
    )
    assert node.status().configuration_index == 7
    node.step(AppendEntries(4, "b", "a", 6, 2, (Entry(7, 4),)))
    assert (node.configuration, node.configuration_index) == (abc, 3)
    # Commands appended after it leave the snapshot's in force.
    node.step(AppendEntries(4, "b", "a", 7, 4, (Entry(8, 4),)))
    assert (node.configuration, node.configuration_index) == (abc, 3)
    assert_configuration_as_if_recomputed(node)


def test_the_configuration_restored_from_a_snapshot_stays_as_entries_follow():
    node = follower([1, 1, 2, 2, 3])
    node.step(install_snapshot(4, 4, 4))
    node.step(AppendEntries(4, "leader", "f", 4, 4, (Entry(5, 4), Entry(6, 4))))
    assert (node.configuration, node.configuration_index) == (CONFIGURATION, 1)
    assert_configuration_as_if_recomputed(node)
    node.step(
        AppendEntries(4, "leader", "f", 6, 4, (config_entry(ABC, index=7, term=4),))
    )
    assert (node.configuration.voters, node.configuration_index) == (set(ABC), 7)
    assert_configuration_as_if_recomputed(node)


def test_a_node_starts_from_a_snapshot_and_the_entries_after_it():
    """Stored entries the snapshot covers are dropped; committed entries
    resume after the snapshot."""
    snapshot = SnapshotMetadata(2, 1, 1, Configuration(frozenset(ABC)))
    entries = [config_entry(ABC, term=1), Entry(2, 1), Entry(3, 1)]
    node = make_node("a", entries, snapshot=snapshot)
    assert (node.log.first_index, node.log.last_index) == (3, 3)
    assert (node.commit_index, node.last_applied) == (2, 2)
    with pytest.raises(ValueError):
        make_node("a", [Entry(5, 1)], snapshot=snapshot)  # a gap


# Compaction.


def test_compact_keeps_a_trailing_window_and_the_configuration_as_of_it():
    net = Net(ABC)
    net.elect("a")
    net.propose("a", "one", "two", "three")
    net.deliver()
    a = net.nodes["a"]
    assert a.last_applied == 5
    snapshot = a.snapshot_metadata()
    assert snapshot == SnapshotMetadata(5, 1, 1, Configuration(frozenset(ABC)))
    net.handle("a", a.compact(snapshot, index=3))
    assert (a.log.snapshot_index, a.log.first_index, a.snapshot) == (3, 4, snapshot)
    assert a.log.term_at(3) == 1 and a.log.term_at(2) is None
    assert a.status().snapshot_index == 5
    # The configuration's entry is compacted away; appends leave it in force.
    net.propose("a", "four")
    net.deliver()
    assert (a.configuration_index, a.status().configuration_term) == (1, 0)
    assert_configuration_as_if_recomputed(a)
    # An older snapshot changes nothing; one past last_applied is refused.
    assert not a.compact(SnapshotMetadata(2, 1, 1, snapshot.configuration))
    assert a.log.snapshot_index == 3
    with pytest.raises(ValueError):
        a.compact(SnapshotMetadata(9, 1, 1, snapshot.configuration))
    with pytest.raises(ValueError):
        a.snapshot_metadata(2)  # compacted


# The leader's side: a peer behind the snapshot gets InstallSnapshot.


def behind_snapshot():
    """Leader "a" has compacted entries "c" never got."""
    net = Net(ABC)
    net.elect("a")
    net.down.add("c")
    net.propose("a", "one", "two")
    net.deliver()
    net.heartbeat("a")
    snapshot = net.compact("a")
    assert snapshot.last_included_index == 4
    net.down.clear()
    return net, snapshot


def test_a_leader_sends_install_snapshot_then_append_entries():
    net, snapshot = behind_snapshot()
    a = net.nodes["a"]
    net.propose("a", "three")
    sent = [m for m in net.pending if m.dest == "c"]
    assert len(sent) == 1 and isinstance(sent[0], InstallSnapshot)
    assert sent[0].metadata == snapshot
    assert a.leader_state.progress["c"].pending_snapshot == 4
    net.deliver()
    progress = a.leader_state.progress["c"]
    assert (progress.match_index, progress.next_index) == (5, 6)
    assert progress.pending_snapshot == 0 and not progress.in_flight
    # The snapshot went first, then the entry after it by AppendEntries.
    to_c = [type(m) for m in net.delivered if m.dest == "c"]
    assert to_c[-2:] == [InstallSnapshot, AppendEntries]
    assert net.stores["c"].snapshot == snapshot
    assert net.commands("c") == ["three"]
    assert net.nodes["c"].last_applied == 5


def test_an_install_snapshot_in_flight_waits_for_its_answer():
    """Not taken as lost after a few ticks, as an AppendEntries is (its
    transfer may be long); an Unreachable makes the next heartbeat send it
    again."""
    net, snapshot = behind_snapshot()
    a = net.nodes["a"]
    dropped = []

    def lost_to_c(message):
        if message.dest == "c":
            dropped.append(message)
            return True
        return False

    for _ in range(4 * ELECTION_TICKS):
        net.tick("a")
        net.deliver(lost_to_c)
    assert a.role is Role.LEADER
    assert [type(m) for m in dropped] == [InstallSnapshot]
    net.step("a", Unreachable(0, "c", "a"))
    net.heartbeat("a")
    assert net.nodes["c"].log.snapshot_index == 4
    assert a.leader_state.progress["c"].match_index == a.log.last_index


def test_a_stale_install_snapshot_reply_does_not_free_the_request_in_flight():
    net, snapshot = behind_snapshot()
    a = net.nodes["a"]
    net.tick("a", a.config.heartbeat_ticks)
    first = next(m for m in net.pending if isinstance(m, InstallSnapshot))
    net.pending.clear()
    net.step("a", Unreachable(0, "c", "a"))
    net.tick("a", a.config.heartbeat_ticks)
    second = next(m for m in net.pending if isinstance(m, InstallSnapshot))
    assert second.request_id > first.request_id
    net.pending.clear()
    late = InstallSnapshotReply(
        a.current_term, "c", "a", 4, a.current_term, first.request_id
    )
    net.step("a", late)
    progress = a.leader_state.progress["c"]
    # Still true: the follower holds the log through 4; but the resent
    # request is still in flight.
    assert progress.match_index == 4 and progress.in_flight
    assert progress.pending_snapshot == 4
    old_term = InstallSnapshotReply(a.current_term, "c", "a", 4, 0, second.request_id)
    net.step("a", old_term)
    assert progress.in_flight


def test_a_merged_ready_keeps_nothing_a_later_snapshot_replaces():
    """The runtime merges a batch's Readys: entries and committed entries
    before a restore are covered by the snapshot, not written or applied."""
    earlier = Ready(entries_to_persist=[Entry(3, 1)], committed_entries=[Entry(2, 1)])
    snapshot = SnapshotMetadata(4, 2, 1, CONFIGURATION)
    earlier.merge(Ready(snapshot=snapshot))
    earlier.merge(Ready(entries_to_persist=[Entry(5, 2)]))
    assert earlier.snapshot == snapshot and not earlier.committed_entries
    assert earlier.entries_to_persist == [Entry(5, 2)]


# A transfer's liveness: chunks stand in for AppendEntries.


def test_a_snapshot_chunk_from_the_leader_holds_off_an_election():
    """While the runtime streams a snapshot no AppendEntries arrives; the
    chunks keep the follower from campaigning (heard_from_leader)."""
    net = Net(ABC)
    net.elect("a")
    b = net.nodes["b"]
    for _ in range(10 * ELECTION_TICKS):
        b.heard_from_leader("a", b.current_term)
        assert b.tick().messages == []
    # From another server, or in another term, a chunk counts for nothing.
    for _ in range(3 * ELECTION_TICKS):
        b.heard_from_leader("c", b.current_term)
        b.heard_from_leader("a", b.current_term - 1)
        if b.tick().messages:
            break
    else:
        raise AssertionError("no election without word from the leader")


def test_a_peer_acknowledging_chunks_counts_for_check_quorum():
    net = Net(ABC)
    a = net.elect("a")
    for _ in range(5 * ELECTION_TICKS):
        a.heard_from_peer("b")
        a.tick()
    assert a.status().role is Role.LEADER
    for _ in range(5 * ELECTION_TICKS):
        a.tick()
    assert a.status().role is Role.FOLLOWER
