"""Elections: Raft §5.2, §5.4.1, pre-vote (dissertation §9.6), leader
stickiness (§4.2.3) and restarts."""

import pytest

from consensus.core.messages import (
    AppendEntries,
    Entry,
    EntryType,
    RequestVote,
    RequestVoteReply,
)
from consensus.core.node import NotLeader, Proposal
from consensus.core.ready import HardState, Role

from .test_node_helpers import (
    ELECTION_TICKS,
    Net,
    config_entry,
    log_of,
    make_node,
)

ABC = ["a", "b", "c"]


def request_vote(source="b", dest="a", term=2, last_log_index=1, last_log_term=0, **kw):
    return RequestVote(term, source, dest, last_log_index, last_log_term, **kw)


def only_message(ready):
    assert len(ready.messages) == 1, ready.messages
    return ready.messages[0]


@pytest.mark.parametrize("seed", range(20))
def test_election_timeout_is_drawn_from_e_to_2e(seed):
    """Raft §5.2: a follower campaigns after a random timeout in
    [election_timeout_ticks, 2 * election_timeout_ticks)."""
    node = make_node("a", [config_entry(ABC)], seed=seed, pre_vote=False)
    ticks = 0
    while node.role is Role.FOLLOWER:
        node.tick()
        ticks += 1
    assert ELECTION_TICKS <= ticks < 2 * ELECTION_TICKS
    assert node.role is Role.CANDIDATE


def test_single_voter_elects_itself_and_commits_at_once():
    """A one-voter cluster wins its own election, commits its NOOP, and
    commits each proposal in the call that makes it."""
    node = make_node("a", [config_entry(["a"])])
    readies = [node.tick() for _ in range(2 * ELECTION_TICKS)]
    assert node.role is Role.LEADER
    assert node.current_term == 1
    won = next(r for r in readies if r.soft_state)
    assert won.hard_state == HardState(1, "a")
    assert [e.type for e in won.entries_to_persist] == [EntryType.NOOP]
    assert [e.index for e in won.committed_entries] == [1, 2]
    ready = node.propose([Proposal("x"), Proposal("y")])
    assert [e.command for e in ready.entries_to_persist] == ["x", "y"]
    assert [e.command for e in ready.committed_entries] == ["x", "y"]
    assert node.commit_index == 4


def test_three_node_election_and_replication():
    """A candidate with votes from a majority leads, appends a NOOP of its
    term and replicates it; followers learn the commit by heartbeat."""
    net = Net(ABC)
    leader = net.elect("a")
    assert leader.current_term == 1
    assert net.nodes["b"].leader_id == "a"
    assert net.nodes["b"].voted_for == "a"
    assert leader.commit_index == 2
    net.propose("a", "I like beer.")
    net.deliver()
    assert net.commands("a") == ["I like beer."]
    net.heartbeat("a")
    assert net.commands("b") == net.commands("c") == ["I like beer."]


def test_a_follower_votes_once_per_term():
    """Raft §5.2: first come, first served; a repeat to the same candidate
    is granted again."""
    node = make_node("a", [config_entry(ABC)])
    first = node.step(request_vote(source="b"))
    assert only_message(first).vote_granted
    assert first.hard_state == HardState(2, "b")
    assert not only_message(node.step(request_vote(source="c"))).vote_granted
    assert only_message(node.step(request_vote(source="b"))).vote_granted


@pytest.mark.parametrize(
    "last_log_index, last_log_term, granted",
    [
        (3, 2, True),  # as up-to-date
        (4, 2, True),  # longer
        (2, 2, False),  # shorter, same last term
        (2, 3, True),  # later last term
        (5, 1, False),  # longer but earlier last term
    ],
)
def test_vote_requires_an_up_to_date_log(last_log_index, last_log_term, granted):
    """Raft §5.4.1: a voter whose log is more up-to-date denies the vote."""
    node = make_node("a", log_of(ABC, [1, 1, 2]))
    reply = only_message(
        node.step(
            request_vote(
                term=5, last_log_index=last_log_index, last_log_term=last_log_term
            )
        )
    )
    assert reply.vote_granted is granted
    assert reply.term == 5


def test_a_stale_request_vote_is_refused_with_our_term():
    node = make_node("a", [config_entry(ABC)], hard_state=HardState(4, None))
    reply = only_message(node.step(request_vote(term=3)))
    assert (reply.term, reply.vote_granted, reply.dest) == (4, False, "b")
    assert node.current_term == 4


def test_a_candidate_steps_down_for_a_leader_of_its_term():
    node = make_node("a", [config_entry(ABC)], pre_vote=False)
    node.tick()
    while node.role is not Role.CANDIDATE:
        node.tick()
    ready = node.step(AppendEntries(node.current_term, "b", "a", 1, 0))
    assert node.role is Role.FOLLOWER
    assert ready.soft_state.leader_id == "b"
    assert only_message(ready).success


def test_learners_and_non_members_never_campaign():
    learner = make_node("d", [config_entry(ABC, learners=["d"])])
    outsider = make_node("e", [config_entry(ABC)])
    empty = make_node("f")
    assert (learner.role, outsider.role, empty.role) == (
        Role.LEARNER,
        Role.NONE,
        Role.NONE,
    )
    for node in (learner, outsider, empty):
        for _ in range(5 * ELECTION_TICKS):
            assert not node.tick()
        assert node.current_term == 0


def test_a_non_member_still_answers_votes_and_appends():
    """Dissertation §4.1: RPCs are processed whatever the configuration."""
    node = make_node("e", [config_entry(ABC)])
    assert only_message(node.step(request_vote(dest="e"))).vote_granted
    reply = only_message(node.step(AppendEntries(2, "b", "e", 1, 0, (Entry(2, 2),))))
    assert reply.success and reply.match_index == 2


# Pre-vote (dissertation §9.6).


def test_pre_vote_changes_no_terms():
    """A follower that times out asks at term + 1 without changing its
    term or vote; voters grant without recording anything."""
    a = make_node("a", [config_entry(ABC)])
    b = make_node("b", [config_entry(ABC)])
    ready = a.tick()
    while not ready.messages:
        ready = a.tick()
    assert a.current_term == 0 and a.voted_for is None
    assert ready.hard_state is None
    request = next(m for m in ready.messages if m.dest == "b")
    assert request.pre_vote and request.term == 1
    answer = b.step(request)
    reply = only_message(answer)
    assert reply.vote_granted and reply.pre_vote and reply.term == 1
    assert answer.hard_state is None
    assert (b.current_term, b.voted_for) == (0, None)
    # A majority of pre-votes starts the real election.
    ready = a.step(reply)
    assert a.role is Role.CANDIDATE
    assert ready.hard_state == HardState(1, "a")
    assert all(not m.pre_vote and m.term == 1 for m in ready.messages)


def test_partitioned_node_rejoining_does_not_disrupt():
    """Dissertation §9.6: a server cut off from the cluster keeps timing
    out, but its pre-votes fail, so its term does not grow, and when it
    returns the leader keeps its term and leadership."""
    net = Net(ABC)
    net.elect("a")
    net.down.add("c")
    for _ in range(10 * ELECTION_TICKS):
        net.tick("a")
        net.tick("b")
        net.tick("c")
        net.deliver()
    assert net.nodes["c"].current_term == 1
    net.down.clear()
    for _ in range(5 * ELECTION_TICKS):
        net.tick("a")
        net.tick("c")
        net.deliver()
    assert net.nodes["a"].role is Role.LEADER
    assert {n.current_term for n in net.nodes.values()} == {1}
    assert net.nodes["c"].leader_id == "a"


def test_pre_vote_refused_while_a_leader_is_heard():
    net = Net(ABC)
    net.elect("a")
    request = request_vote(
        source="c", dest="b", term=2, last_log_index=9, last_log_term=1, pre_vote=True
    )
    reply = only_message(net.nodes["b"].step(request))
    assert not reply.vote_granted and reply.term == 1
    # The leader itself refuses too.
    reply = only_message(net.nodes["a"].step(request))
    assert not reply.vote_granted


def test_pre_vote_granted_once_the_leader_is_silent():
    net = Net(ABC)
    net.elect("a")
    b = net.nodes["b"]
    for _ in range(ELECTION_TICKS):
        b.tick()
    request = request_vote(
        source="c", dest="b", term=2, last_log_index=9, last_log_term=1, pre_vote=True
    )
    reply = only_message(b.step(request))
    assert reply.vote_granted and reply.term == 2
    assert b.current_term == 1


def test_a_pre_vote_refusal_with_a_newer_term_is_adopted():
    """A server that missed a term learns it from a refused pre-vote, so
    its next pre-vote asks above everyone's term. (Without this, a lone
    most-up-to-date server below the others' term could never win.)"""
    a = make_node("a", log_of(ABC, [1, 1, 1]), hard_state=HardState(1, None))
    b = make_node("b", log_of(ABC, [1, 1]), hard_state=HardState(3, None))
    ready = a.tick()
    while not ready.messages:
        ready = a.tick()
    to_b = next(m for m in ready.messages if m.dest == "b")
    assert to_b.term == 2
    refusal = only_message(b.step(to_b))
    assert not refusal.vote_granted and refusal.term == 3
    assert b.current_term == 3
    a.step(refusal)
    assert (a.current_term, a.role) == (3, Role.FOLLOWER)
    # Next round a asks at 4, which b grants: a's log is ahead.
    ready = a.tick()
    while not ready.messages:
        ready = a.tick()
    to_b = next(m for m in ready.messages if m.dest == "b")
    assert only_message(b.step(to_b)).vote_granted


def test_a_voter_ahead_of_a_pre_voter_campaigns_at_once():
    """Departure 12: c refuses b's pre-vote because c's log is ahead, and,
    out of touch with the leader too, campaigns then rather than at its
    own timeout: b cannot win, c can."""
    net = Net(ABC)
    net.elect("a")
    net.propose("a", "x")
    net.deliver(drop=lambda m: "b" in (m.source, m.dest))
    b, c = net.nodes["b"], net.nodes["c"]
    assert c.log.last_index > b.log.last_index
    net.down.add("a")
    b.timer.timeout, c.timer.timeout = ELECTION_TICKS, 2 * ELECTION_TICKS - 1
    for _ in range(ELECTION_TICKS):
        net.tick("c")
        net.tick("b")
    assert c.campaign is None  # c's own timeout is far off
    pre_vote = next(m for m in net.pending if m.source == "b" and m.dest == "c")
    assert pre_vote.pre_vote
    net.deliver()
    assert c.role is Role.LEADER and b.leader_id == "c"


def test_a_voter_in_touch_with_the_leader_does_not_campaign_on_a_pre_vote():
    net = Net(ABC)
    net.elect("a")
    net.propose("a", "x")
    net.deliver(drop=lambda m: "b" in (m.source, m.dest))
    c = net.nodes["c"]
    request = request_vote(
        source="b", dest="c", term=2, last_log_index=1, last_log_term=1, pre_vote=True
    )
    reply = only_message(c.step(request))
    assert not reply.vote_granted and c.campaign is None


# Leader stickiness (dissertation §4.2.3).


def test_request_vote_ignored_while_a_leader_is_heard():
    """A follower that heard from its leader within the minimum election
    timeout ignores a RequestVote entirely: no vote, and no new term."""
    net = Net(ABC)
    net.elect("a")
    b = net.nodes["b"]
    ready = b.step(
        request_vote(source="c", dest="b", term=5, last_log_index=9, last_log_term=1)
    )
    reply = only_message(ready)
    assert not reply.vote_granted and reply.term == 1
    assert ready.hard_state is None
    assert (b.current_term, b.leader_id) == (1, "a")
    # The leader ignores it too.
    leader = net.nodes["a"]
    ready = leader.step(
        request_vote(source="c", term=5, last_log_index=9, last_log_term=1)
    )
    assert not only_message(ready).vote_granted
    assert leader.role is Role.LEADER and leader.current_term == 1


def test_transfer_request_vote_overrides_stickiness():
    net = Net(ABC)
    net.elect("a")
    b = net.nodes["b"]
    request = request_vote(
        source="c", dest="b", term=2, last_log_index=9, last_log_term=1, transfer=True
    )
    reply = only_message(b.step(request))
    assert reply.vote_granted and reply.term == 2
    assert (b.current_term, b.voted_for, b.leader_id) == (2, "c", None)


# Restart.


def test_restart_restores_term_vote_and_log():
    """Raft Figure 2: current_term, voted_for and the log survive; a
    restarted voter cannot vote twice in a term."""
    net = Net(ABC)
    net.elect("a")
    net.propose("a", "one", "two")
    net.deliver()
    net.heartbeat("a")
    b = net.restart("b")
    assert (b.current_term, b.voted_for) == (1, "a")
    assert b.role is Role.FOLLOWER and b.leader_id is None
    assert b.log.last_index == 4
    assert b.commit_index == 4  # what it had applied
    ready = b.step(
        request_vote(source="c", dest="b", term=1, last_log_index=9, last_log_term=1)
    )
    assert not only_message(ready).vote_granted


def test_restart_hands_out_nothing_already_applied():
    """committed_entries resume after last_applied, never repeating."""
    net = Net(ABC)
    net.elect("a")
    net.propose("a", "one", "two")
    net.deliver()
    net.heartbeat("a")
    applied = [e.index for e in net.stores["a"].applied]
    assert applied == [1, 2, 3, 4]
    # Pretend the runtime had applied only up to 2 before the crash.
    net.stores["a"].applied = net.stores["a"].applied[:2]
    a = net.restart("a")
    assert a.role is Role.FOLLOWER and a.commit_index == 2
    # The whole cluster restarts, so no one remembers a leader.
    net.restart("b")
    net.restart("c")
    net.elect("a")
    assert [e.index for e in net.stores["a"].applied] == [1, 2, 3, 4, 5]


def test_restart_as_learner_or_non_member():
    entries = [config_entry(ABC, learners=["d"])]
    assert make_node("d", entries).role is Role.LEARNER
    assert make_node("e", entries).role is Role.NONE


def test_propose_on_a_follower_names_the_leader():
    net = Net(ABC)
    net.elect("a")
    with pytest.raises(NotLeader) as raised:
        net.nodes["b"].propose([Proposal("x")])
    assert raised.value.leader_id == "a"
    with pytest.raises(NotLeader) as raised:
        make_node("a", [config_entry(ABC)]).propose([Proposal("x")])
    assert raised.value.leader_id is None


def test_old_vote_replies_do_not_count():
    """A vote granted in an earlier term does not count now."""
    a = make_node("a", [config_entry(ABC)], pre_vote=False)
    while a.role is not Role.CANDIDATE:
        a.tick()
    old_term = a.current_term
    while a.current_term == old_term:
        a.tick()
    a.step(RequestVoteReply(old_term, "b", "a", vote_granted=True))
    assert a.role is Role.CANDIDATE
    a.step(RequestVoteReply(a.current_term, "b", "a", vote_granted=True))
    assert a.role is Role.LEADER
