"""A peer message the core cannot accept is refused with a reply, never
raised: the runtime's loop stops the node on any exception (issue 10).
The /raft/ views refuse these at the edge already; these tests hold the
core to the same rule for whatever passes them."""

from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryType,
)
from consensus.core.ready import HardState

from .test_node_helpers import Net, log_of, make_node


def follower(terms, current_term=None, last_applied=0):
    current_term = current_term if current_term is not None else max(terms)
    return make_node(
        "f",
        log_of(["leader", "f", "g"], terms),
        hard_state=HardState(current_term),
        last_applied=last_applied,
    )


def request(term, prev_log_index, prev_log_term, entries, leader_commit=0):
    return AppendEntries(
        term,
        "leader",
        "f",
        prev_log_index,
        prev_log_term,
        tuple(entries),
        leader_commit,
    )


def refused(node, message, term_before):
    ready = node.step(message)
    (reply,) = ready.messages
    assert isinstance(reply, AppendEntriesReply) and not reply.success
    assert ready.entries_to_persist == []
    assert node.current_term == term_before
    return reply


def test_entries_that_do_not_follow_on_are_refused_and_change_nothing():
    """Issue 10: [{"index": 99, ...}] after prev_log_index 3 stopped nodes."""
    node = follower([1, 1, 2])
    refused(node, request(5, 3, 2, [Entry(99, 5, command="x")]), term_before=2)
    assert node.log.last_index == 3


def test_a_gap_between_entries_is_refused():
    node = follower([1, 1, 2])
    entries = [Entry(4, 2, command="a"), Entry(6, 2, command="b")]
    refused(node, request(2, 3, 2, entries), term_before=2)


def test_decreasing_terms_are_refused():
    node = follower([1, 1, 2])
    entries = [Entry(4, 2, command="a"), Entry(5, 1, command="b")]
    refused(node, request(2, 3, 2, entries), term_before=2)


def test_an_entry_term_above_the_leaders_is_refused():
    node = follower([1, 1, 2])
    refused(node, request(2, 3, 2, [Entry(4, 7, command="a")]), term_before=2)


def test_a_config_entry_that_is_no_configuration_is_refused():
    """Issue 10: it raised in membership.latest_configuration."""
    node = follower([1, 1, 2])
    for command in ("not json", "[]", '{"voters": 5}', '{"voters": [[1]]}', "null"):
        bad = Entry(4, 3, EntryType.CONFIG, command)
        refused(node, request(3, 3, 2, [bad]), term_before=2)
    assert node.log.last_index == 3


def test_a_forged_append_that_contradicts_committed_entries_is_refused():
    """Issue 10: entries that differ from committed ones raised RuntimeError
    in log.py, again after each restart. Now refused, nothing overwritten."""
    node = follower([1, 1, 2], last_applied=3)
    assert node.commit_index == 3
    reply = refused(
        node, request(2, 1, 1, [Entry(2, 2, command="forged")]), term_before=2
    )
    assert reply.term == 2
    assert [e.command for e in node.log][1:] == ["x2", "x3"]


def test_a_forged_success_beyond_the_leaders_log_is_ignored():
    """A reply claiming more than the leader holds moves nothing."""
    net = Net(["a", "b", "c"])
    leader = net.elect("a")
    net.propose("a", "x")
    before = leader.commit_index
    forged = AppendEntriesReply(
        term=leader.current_term,
        source="b",
        dest="a",
        success=True,
        match_index=leader.log.last_index + 100,
        request_term=leader.current_term,
    )
    leader.step(forged)
    assert leader.status().progress["b"].match_index <= leader.log.last_index
    assert leader.commit_index == before
