"""Log replication: Raft §5.3 consistency check, truncation, fast
backtracking (Figure 7), commitment (§5.4.2, Figure 8), batching with one
AppendEntries in flight per peer, learners."""

import pytest

from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    Unreachable,
)
from consensus.core.ready import HardState, Role

from .test_node_helpers import Net, config_entry, log_of, make_node

ABC = ["a", "b", "c"]


def append_entries(term, prev_log_index, prev_log_term, entries=(), leader_commit=0):
    return AppendEntries(
        term,
        "leader",
        "f",
        prev_log_index,
        prev_log_term,
        tuple(Entry(i, t, command=f"new{i}") for i, t in entries),
        leader_commit,
    )


def follower(terms, current_term=None):
    """A follower "f" whose log holds one entry per term given."""
    current_term = current_term if current_term is not None else max(terms)
    return make_node(
        "f", log_of(["leader", "f", "g"], terms), hard_state=HardState(current_term)
    )


def only_reply(ready):
    assert len(ready.messages) == 1, ready.messages
    reply = ready.messages[0]
    assert isinstance(reply, AppendEntriesReply) and reply.dest == "leader"
    return reply


# The follower's side (Raft Figure 2, AppendEntries receiver).


def test_consistency_check_fails_on_a_short_log():
    """§5.3: too short: conflict_term 0, conflict_index last_index + 1."""
    node = follower([1, 1, 2])
    ready = node.step(append_entries(3, 5, 2, [(6, 3)]))
    reply = only_reply(ready)
    assert not reply.success
    assert (reply.conflict_term, reply.conflict_index) == (0, 4)
    assert reply.prev_log_index == 5
    assert reply.term == 3
    assert ready.entries_to_persist == []


def test_consistency_check_fails_on_a_term_mismatch():
    """§5.3: the conflicting entry's term and the first index of it."""
    node = follower([1, 2, 2, 2])
    reply = only_reply(node.step(append_entries(3, 4, 3)))
    assert not reply.success
    assert (reply.conflict_term, reply.conflict_index) == (2, 2)


def test_conflicting_entries_are_truncated():
    """§5.3: delete the conflicting entry and all that follow, then append;
    entries_to_persist starts at the truncation point."""
    node = follower([1, 1, 2, 2])
    ready = node.step(append_entries(3, 2, 1, [(3, 3)]))
    assert [(e.index, e.term) for e in ready.entries_to_persist] == [(3, 3)]
    assert [e.term for e in node.log] == [1, 1, 3]
    reply = only_reply(ready)
    assert reply.success and reply.match_index == 3


def test_matching_entries_are_skipped_and_only_new_ones_persisted():
    node = follower([1, 1, 2])
    ready = node.step(append_entries(2, 1, 1, [(2, 1), (3, 2), (4, 2)]))
    assert [e.index for e in ready.entries_to_persist] == [4]
    assert only_reply(ready).match_index == 4


def test_stale_duplicate_does_not_truncate():
    """A reordered AppendEntries whose entries all match changes nothing,
    even though the log runs past them."""
    node = follower([1, 1, 1, 1])
    ready = node.step(append_entries(1, 1, 1, [(2, 1)]))
    assert ready.entries_to_persist == []
    assert node.log.last_index == 4
    reply = only_reply(ready)
    assert reply.success and reply.match_index == 2


def test_commit_index_is_min_of_leader_commit_and_last_new_entry():
    """Raft Figure 2: commit_index = min(leader_commit, index of last new
    entry); entries past the request may not match the leader's."""
    node = follower([1, 1, 1, 1])
    ready = node.step(append_entries(1, 1, 1, [(2, 1)], leader_commit=4))
    assert node.commit_index == 2
    assert [e.index for e in ready.committed_entries] == [1, 2]
    # A stale request never lowers it.
    ready = node.step(append_entries(1, 0, 0, leader_commit=1))
    assert node.commit_index == 2 and ready.committed_entries == []


def test_stale_leader_is_refused_with_our_term():
    node = follower([1, 1], current_term=5)
    reply = only_reply(node.step(append_entries(4, 2, 1)))
    assert not reply.success and reply.term == 5
    assert node.leader_id is None


def test_append_entries_records_the_leader_and_adopts_its_term():
    node = follower([1, 1])
    ready = node.step(append_entries(3, 2, 1))
    assert ready.hard_state == HardState(3, None)
    assert ready.soft_state.leader_id == "leader"
    assert only_reply(ready).success


# Fast backtracking (§5.3) against the follower logs of Raft Figure 7.

FIGURE_7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    # name: (log terms, AppendEntries needed to bring it in line)
    "a": ([1, 1, 1, 4, 4, 5, 5, 6, 6], 2),
    "b": ([1, 1, 1, 4], 2),
    "c": ([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 1),
    "d": ([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 1),
    "e": ([1, 1, 1, 4, 4, 4, 4], 3),
    "f": ([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3),
}


def test_figure_7_fast_backtracking_with_conflict_term():
    """The leader for term 8 brings every follower of Figure 7 in line,
    skipping a whole conflicting term per round trip: (e) and (f) need
    three AppendEntries, not one per missing or extra entry."""
    voters = ["leader", *FIGURE_7_FOLLOWERS]
    net = Net([])
    net.add("leader", log_of(voters, FIGURE_7_LEADER), hard_state=HardState(7))
    for n, (name, (terms, _)) in enumerate(FIGURE_7_FOLLOWERS.items()):
        net.add(name, log_of(voters, terms), seed=n, hard_state=HardState(7))
    leader = net.elect("leader")
    assert leader.current_term == 8
    for name, (_, round_trips) in FIGURE_7_FOLLOWERS.items():
        requests = [
            m for m in net.delivered if isinstance(m, AppendEntries) and m.dest == name
        ]
        assert len(requests) == round_trips, name
        assert list(net.nodes[name].log) == list(leader.log), name
    assert [e.term for e in leader.log] == FIGURE_7_LEADER + [8]


# Commitment (§5.4.2).


def not_yet(net, m):
    if m.dest in ("s2", "s4"):
        return True
    would_accept = net.nodes[m.dest].log.last_index >= m.prev_log_index
    return would_accept and any(e.term == 4 for e in m.entries)


def figure_8_c():
    """Raft Figure 8 (c): S1 leads term 4 (its term-4 entry at index 3 on
    S1 alone) and has copied its term-2 entry at index 2 to S3, so S1, S2
    and S3 hold it; S5 (down) holds a term-3 entry at index 2."""
    servers = ["s1", "s2", "s3", "s4", "s5"]
    net = Net([], max_append_entries=1)
    net.add("s1", log_of(servers, [1, 2]), seed=1, hard_state=HardState(3))
    net.add("s2", log_of(servers, [1, 2]), seed=2, hard_state=HardState(2))
    net.add("s3", log_of(servers, [1]), seed=3, hard_state=HardState(3, "s5"))
    net.add("s4", log_of(servers, [1]), seed=4, hard_state=HardState(3, "s5"))
    net.add("s5", log_of(servers, [1, 3]), seed=5, hard_state=HardState(3, "s5"))
    net.down.add("s5")
    s1 = net.nodes["s1"]
    for _ in range(40):
        net.tick("s1")
        # Only S3 gets S1's entries, and not the term-4 one: S1 crashes
        # before that request arrives.
        net.deliver(drop=lambda m: isinstance(m, AppendEntries) and not_yet(net, m))
        if s1.role is Role.LEADER:
            break
    assert s1.current_term == 4
    return net


def test_figure_8_old_term_entry_not_committed_by_counting():
    """A leader does not commit an entry of an earlier term because a
    majority holds it (§5.4.2): S5 could still be elected and overwrite
    it, as in Figure 8 (d)."""
    net = figure_8_c()
    s1 = net.nodes["s1"]
    assert [[e.term for e in net.nodes[s].log] for s in ("s1", "s2", "s3")] == [
        [1, 2, 4],
        [1, 2],
        [1, 2],
    ]
    assert s1.status().progress["s3"].match_index == 2
    assert s1.commit_index < 2
    assert net.stores["s1"].applied == []
    # (d): S1 crashes; S5 is elected by S2, S3 and S4 and overwrites index 2.
    net.down = {"s1"}
    for name in ("s2", "s3", "s4", "s5"):
        net.restart(name)
    s5 = net.elect("s5")
    assert s5.current_term == 5
    for name in ("s2", "s3", "s4"):
        assert [e.term for e in net.nodes[name].log] == [1, 3, 5], name


def test_figure_8_e_current_term_entry_commits_the_earlier_ones():
    """Figure 8 (e): once S1's term-4 entry is on a majority, it and the
    term-2 entry before it are committed."""
    net = figure_8_c()
    s1 = net.nodes["s1"]
    # S1's lost requests count as lost after a while, and are resent.
    for _ in range(s1.config.election_timeout_ticks):
        net.tick("s1")
        net.deliver()
    assert s1.role is Role.LEADER
    assert s1.commit_index == 3
    assert [e.index for e in net.stores["s1"].applied] == [1, 2, 3]


# The leader's side: one AppendEntries in flight per peer, batching.


def elected(**config):
    net = Net(ABC, **config)
    net.elect("a")
    return net, net.nodes["a"]


def test_one_append_entries_in_flight_per_peer_and_batching():
    """Entries proposed while a request is in flight all go in the next
    one, sent as soon as the reply arrives."""
    net, leader = elected()
    first = net.propose("a", "x")
    assert sorted(m.dest for m in first.messages) == ["b", "c"]
    assert net.propose("a", "y").messages == []
    assert net.propose("a", "z").messages == []
    reply = net.step("b", net.pending.pop(0))
    ready = net.step("a", reply.messages[0])
    (batch,) = ready.messages
    assert batch.dest == "b"
    assert [e.command for e in batch.entries] == ["y", "z"]
    # A majority (a, b) has x: committed and handed out once.
    assert [e.command for e in ready.committed_entries] == ["x"]


def test_append_entries_bounded_by_max_append_entries():
    net, leader = elected(max_append_entries=2)
    net.down.add("c")
    net.pending.clear()
    ready = net.propose("a", *"pqrst")
    assert [len(m.entries) for m in ready.messages if m.dest == "b"] == [2]
    net.deliver()
    sizes = [
        len(m.entries)
        for m in net.delivered
        if isinstance(m, AppendEntries) and m.dest == "b" and m.entries
    ]
    assert sizes[-3:] == [2, 2, 1]
    assert net.commands("a") == list("pqrst")


def test_heartbeat_skips_peers_with_a_request_in_flight():
    net, leader = elected()
    net.propose("a", "x")
    net.pending = [m for m in net.pending if m.dest == "c"]
    ready = leader.tick()
    ready = leader.tick()
    assert [m.dest for m in ready.messages] == []
    # c answers; the next heartbeat goes to c only... and b still waits.
    net.deliver()
    net.tick("a", leader.config.heartbeat_ticks)
    assert [m.dest for m in net.pending] == ["c"]


def test_unreachable_clears_the_request_in_flight():
    """The next heartbeat resends to a peer the runtime could not reach."""
    net, leader = elected()
    net.propose("a", "x")
    net.pending = [m for m in net.pending if m.dest == "c"]
    assert not leader.step(Unreachable(0, "b", "a"))
    net.tick("a", leader.config.heartbeat_ticks)
    resent = [m for m in net.pending if m.dest == "b"]
    assert len(resent) == 1 and [e.command for e in resent[0].entries] == ["x"]


def test_a_lost_request_is_resent_after_a_while():
    """Without a reply or an Unreachable, a request counts as lost after
    half an election timeout, so one lost message cannot stall a peer."""
    net, leader = elected()
    net.propose("a", "x")
    net.pending = [m for m in net.pending if m.dest == "c"]
    net.deliver()
    resent = []
    for _ in range(leader.config.election_timeout_ticks):
        resent += [m for m in leader.tick().messages if m.dest == "b"]
    assert resent and [e.command for e in resent[0].entries] == ["x"]


def test_stale_rejection_is_ignored():
    """A rejection for an earlier prev_log_index does not move next_index."""
    net, leader = elected()
    before = leader.status().progress["b"]
    stale = AppendEntriesReply(
        1,
        "b",
        "a",
        success=False,
        prev_log_index=0,
        conflict_index=1,
        request_term=1,
        request_id=leader.leader_state.progress["b"].request_id,
    )
    assert leader.step(stale).messages == []
    assert leader.status().progress["b"].next_index == before.next_index


def reply_of(net, follower, request):
    """Deliver ``request`` to ``follower`` and take back its reply, unsent."""
    (reply,) = net.step(follower, request).messages
    net.pending.remove(reply)
    return reply


def test_rejection_of_an_earlier_terms_request_is_no_log_conflict():
    """An AppendEntries delayed from the leader's earlier term is refused
    for its term alone (Raft §5.1, Figure 2 receiver rule 1), with no
    conflict hint. The leader, re-elected in the follower's term, learns
    nothing about the follower's log from it (§5.3): next_index stays, and
    the request in flight in the current term is still in flight."""
    net = Net(ABC)
    net.elect("a")
    net.tick("a", net.nodes["a"].config.heartbeat_ticks)
    (old,) = [m for m in net.pending if m.dest == "b"]
    assert (old.term, old.prev_log_index) == (1, 2)
    net.pending.clear()
    for id in ABC:
        net.restart(id)
    leader = net.nodes["a"]
    while leader.role is not Role.LEADER:
        net.tick("a")
        # a's first AppendEntries of term 2 to b (prev_log_index 2) is
        # lost, and stays in flight.
        net.deliver(drop=lambda m: isinstance(m, AppendEntries) and m.dest == "b")
    assert leader.current_term == net.nodes["b"].current_term == 2
    assert leader.status().progress["b"].next_index == 3
    rejection = reply_of(net, "b", old)
    assert (rejection.term, rejection.success) == (2, False)
    assert rejection.prev_log_index == 2 and rejection.conflict_index == 0
    ready = net.step("a", rejection)
    assert leader.status().progress["b"].next_index == 3
    assert ready.messages == []  # one AppendEntries in flight per peer


def test_late_reply_to_a_resent_request_leaves_the_resend_in_flight():
    """One AppendEntries in flight per peer: once a request taken as lost
    has been resent, a late reply to the first one does not free the slot
    of the resend; the resend's own reply does."""
    net, leader = elected()
    net.propose("a", "x")
    (first,) = [m for m in net.pending if m.dest == "b"]
    net.pending.remove(first)
    net.deliver()
    resent = []
    while not resent:
        resent = [m for m in net.handle("a", leader.tick()).messages if m.dest == "b"]
    net.pending.clear()
    late = reply_of(net, "b", first)
    assert late.success and late.match_index == 3
    net.step("a", late)
    assert leader.status().progress["b"].match_index == 3  # still news
    assert [m for m in net.propose("a", "y").messages if m.dest == "b"] == []
    ready = net.step("a", reply_of(net, "b", resent[0]))
    (batch,) = [m for m in ready.messages if m.dest == "b"]
    assert [e.command for e in batch.entries] == ["y"]


def test_rejection_never_moves_next_index_below_match_index():
    net, leader = elected()
    net.propose("a", "x")
    net.deliver()
    progress = leader.status().progress["b"]
    assert (progress.match_index, progress.next_index) == (3, 4)
    bogus = AppendEntriesReply(
        1,
        "b",
        "a",
        success=False,
        prev_log_index=3,
        conflict_index=1,
        request_term=1,
        request_id=leader.leader_state.progress["b"].request_id,
    )
    leader.step(bogus)
    assert leader.status().progress["b"].next_index == 4


def test_learners_do_not_count_for_commit():
    """Dissertation §4.2.1: learners receive the log but a majority of
    voters is still needed."""
    entries = [config_entry(ABC, learners=["d", "e"])]
    net = Net(["a", "b", "c", "d", "e"], entries=entries)
    net.down = {"b", "c"}
    net.restart("d")
    net.restart("e")
    # With b and c down, a cannot even be elected: only voters vote.
    with pytest.raises(AssertionError):
        net.elect("a")
    net.down = {"c"}
    leader = net.elect("a")
    net.down = {"b", "c"}
    net.propose("a", "x")
    net.deliver()
    assert leader.status().progress["d"].match_index == 3
    assert leader.status().progress["e"].match_index == 3
    assert not leader.status().progress["d"].voter
    assert leader.commit_index == 2
    net.down = {"c"}
    net.heartbeat("a")
    assert leader.commit_index == 3
    net.heartbeat("a")
    assert net.commands("d") == ["x"]


def test_committed_entries_handed_out_exactly_once():
    """Across many calls each committed entry comes out once, in order
    (Store.save asserts it on every Ready)."""
    net, leader = elected()
    for n in range(5):
        net.propose("a", f"c{n}")
        net.deliver()
        net.heartbeat("a")
        net.heartbeat("a")
    for name in ABC:
        assert net.commands(name) == [f"c{n}" for n in range(5)]
        applied = [e.index for e in net.stores[name].applied]
        assert applied == list(range(1, 8))
