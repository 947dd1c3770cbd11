"""Leadership: check quorum (dissertation §6.2), leadership transfer
(§3.10) and membership changes (chapter 4)."""

import pytest

from consensus.core import membership
from consensus.core.configuration import Configuration
from consensus.core.messages import (
    AppendEntries,
    Entry,
    EntryType,
    RequestVoteReply,
    TimeoutNow,
)
from consensus.core.node import (
    ChangeRefusal,
    MembershipChangeRefused,
    NotLeader,
    Proposal,
    TransferRefusal,
    TransferRefused,
)
from consensus.core.ready import Role

from .test_node_helpers import ELECTION_TICKS, Net, config_entry, make_node

ABC = ["a", "b", "c"]


def elected(ids=ABC, **config):
    net = Net(ids, **config)
    net.elect("a")
    return net, net.nodes["a"]


def change(voters, learners=()):
    configuration = Configuration(frozenset(voters), frozenset(learners))
    return Proposal(configuration.to_json(), type=EntryType.CONFIG)


def run(net, ticks, ids=None):
    for _ in range(ticks):
        for id in ids or net.nodes:
            if id not in net.down:
                net.tick(id)
        net.deliver()


# Check quorum (dissertation §6.2).


def test_leader_without_a_majority_steps_down():
    """A leader that hears from no majority for an election timeout steps
    down, leader unknown, in the same term."""
    net, leader = elected()
    net.down = {"b", "c"}
    ticks = 0
    while leader.role is Role.LEADER:
        net.tick("a")
        net.deliver()
        ticks += 1
    # The window the election ended in had replies; the next has none.
    assert ELECTION_TICKS < ticks <= 2 * ELECTION_TICKS
    assert leader.role is Role.FOLLOWER
    assert leader.leader_id is None
    assert leader.current_term == 1


def test_leader_with_a_majority_keeps_leading():
    net, leader = elected()
    net.down = {"c"}
    for _ in range(5 * ELECTION_TICKS):
        net.tick("a")
        net.deliver()
    assert leader.role is Role.LEADER
    assert leader.status().progress["b"].recent_active


def test_check_quorum_can_be_disabled():
    net, leader = elected(check_quorum=False)
    net.down = {"b", "c"}
    run(net, 5 * ELECTION_TICKS, ids=["a"])
    assert leader.role is Role.LEADER


# Leadership transfer (dissertation §3.10).


def test_transfer_to_an_up_to_date_voter():
    """The leader sends TimeoutNow at once; the target campaigns without
    pre-vote and voters grant despite having just heard from the leader."""
    net, leader = elected()
    ready = net.handle("a", leader.transfer_leadership("b"))
    # The transfer's identity: the leader's last entry (index 2, term 1).
    assert ready.messages == [TimeoutNow(1, "a", "b", 2, 1)]
    with pytest.raises(NotLeader) as raised:
        leader.propose([Proposal("x")])
    assert raised.value.leader_id is None
    net.deliver()
    b = net.nodes["b"]
    assert b.role is Role.LEADER and b.current_term == 2
    assert leader.role is Role.FOLLOWER and leader.leader_id == "b"
    assert net.nodes["c"].leader_id == "b"


def test_transfer_waits_for_the_target_to_catch_up():
    net, leader = elected()
    net.down = {"c"}
    net.propose("a", "x", "y")
    net.deliver()
    net.down = set()
    ready = net.handle("a", leader.transfer_leadership("c"))
    (catch_up,) = ready.messages
    assert isinstance(catch_up, AppendEntries) and catch_up.dest == "c"
    net.deliver()
    assert net.nodes["c"].role is Role.LEADER
    assert net.nodes["c"].log.last_index == 5


def test_transfer_without_a_target_picks_the_most_up_to_date_voter():
    net, leader = elected()
    net.down = {"b"}
    net.propose("a", "x")
    net.deliver()
    net.down = set()
    net.handle("a", leader.transfer_leadership())
    assert leader.leader_state.transfer_target == "c"


def test_transfer_aborts_after_an_election_timeout():
    """A target that never catches up: after an election timeout the
    leader resumes taking proposals."""
    net, leader = elected()
    net.down = {"c"}
    net.handle("a", leader.transfer_leadership("c"))
    for _ in range(ELECTION_TICKS - 1):
        net.tick("a")
        net.deliver()
        with pytest.raises(NotLeader):
            leader.propose([Proposal("x")])
    net.tick("a")
    net.propose("a", "x")
    net.deliver()
    assert net.commands("a") == ["x"]


def test_transfer_refuses_non_voters_and_non_leaders():
    net, leader = elected(["a", "b", "c", "d"], entries=[config_entry(ABC, ["d"])])
    with pytest.raises(ValueError):
        leader.transfer_leadership("d")
    with pytest.raises(ValueError):
        leader.transfer_leadership("nobody")
    with pytest.raises(NotLeader):
        net.nodes["b"].transfer_leadership("c")
    assert not leader.transfer_leadership("a")


@pytest.mark.parametrize(
    "to, reason",
    [
        ("d", TransferRefusal.NOT_A_VOTER),
        ("nobody", TransferRefusal.UNKNOWN_SERVER),
    ],
)
def test_transfer_refusals_carry_their_reason(to, reason):
    net, leader = elected(["a", "b", "c", "d"], entries=[config_entry(ABC, ["d"])])
    with pytest.raises(TransferRefused) as raised:
        leader.transfer_leadership(to)
    assert raised.value.reason is reason
    assert leader.status().transfer_target is None


def test_a_sole_voter_has_no_one_to_transfer_to():
    net, leader = elected(["a"])
    with pytest.raises(TransferRefused) as raised:
        leader.transfer_leadership()
    assert raised.value.reason is TransferRefusal.NO_OTHER_VOTER


def test_status_names_the_transfer_target_until_the_transfer_ends():
    net, leader = elected()
    net.down = {"c"}
    net.handle("a", leader.transfer_leadership("c"))
    assert leader.status().transfer_target == "c"
    run(net, ELECTION_TICKS, ids=["a"])
    assert leader.status().transfer_target is None


def give_up_transfer(net, leader, to):
    """Start a transfer to ``to``, hold back every TimeoutNow, and tick
    until the leader gives the transfer up. Returns the first TimeoutNow."""
    ready = net.handle("a", leader.transfer_leadership(to))
    (timeout_now,) = [m for m in ready.messages if isinstance(m, TimeoutNow)]
    net.pending.remove(timeout_now)
    while leader.status().transfer_target is not None:
        for id in net.nodes:
            net.tick(id)
        net.deliver(drop=lambda m: isinstance(m, TimeoutNow))
    return timeout_now


def test_timeout_now_arriving_after_the_leader_appended_is_ignored():
    """A TimeoutNow delayed past the end of its transfer does not make the
    target campaign past leader stickiness (§3.10, §4.2.3) once the target
    holds entries the leader appended since."""
    net, leader = elected()
    stale = give_up_transfer(net, leader, "b")
    net.propose("a", "x")
    net.deliver()
    b = net.nodes["b"]
    assert not net.step("b", stale).messages
    assert b.role is Role.FOLLOWER and b.current_term == 1
    assert leader.role is Role.LEADER


def test_timeout_now_arriving_after_a_transfer_given_up_on_an_idle_leader():
    """Even with no client write since, a TimeoutNow that outlived its
    transfer is ignored once the target has heard from the leader again."""
    net, leader = elected()
    stale = give_up_transfer(net, leader, "b")
    net.heartbeat("a")
    b = net.nodes["b"]
    assert not net.step("b", stale).messages
    assert b.role is Role.FOLLOWER and b.current_term == 1
    assert leader.role is Role.LEADER


def test_timeout_now_is_ignored_by_non_voters_and_stale_terms():
    learner = make_node("d", [config_entry(ABC, ["d"])])
    assert learner.step(TimeoutNow(1, "a", "d")).messages == []
    assert learner.current_term == 1 and learner.role is Role.LEARNER
    voter = make_node("b", [config_entry(ABC)])
    voter.step(AppendEntries(3, "a", "b", 1, 0))
    assert not voter.step(TimeoutNow(2, "a", "b", 1, 0))
    ready = voter.step(TimeoutNow(3, "a", "b", 1, 0))
    assert voter.role is Role.CANDIDATE and voter.current_term == 4
    assert all(m.transfer and not m.pre_vote for m in ready.messages)


@pytest.mark.parametrize(
    "timeout_now",
    [
        TimeoutNow(3, "c", "b", 1, 0),  # not from the leader it follows
        TimeoutNow(3, "a", "b", 2, 3),  # the leader's log was longer
        TimeoutNow(3, "a", "b", 1, 2),  # ... or ended in another term
        TimeoutNow(3, "a", "b"),  # says nothing of the leader's log
    ],
)
def test_timeout_now_that_does_not_match_the_present_is_ignored(timeout_now):
    voter = make_node("b", [config_entry(ABC)])
    voter.step(AppendEntries(3, "a", "b", 1, 0))
    assert not voter.step(timeout_now)
    assert voter.role is Role.FOLLOWER and voter.current_term == 3


def test_timeout_now_after_a_restart_waits_for_the_leader():
    """A restarted target does not know its leader until the leader's next
    AppendEntries; the leader's TimeoutNow after that reply counts."""
    net, leader = elected()
    net.restart("b")
    ready = net.handle("a", leader.transfer_leadership("b"))
    (timeout_now,) = ready.messages
    net.pending.clear()
    assert not net.step("b", timeout_now).messages
    net.deliver()
    net.heartbeat("a")
    assert net.nodes["b"].role is Role.LEADER


def test_a_replaced_transfer_outdates_the_first_timeout_now():
    """A new target replaces the transfer under way (departure 9); the first
    target's TimeoutNow no longer counts once it holds the NOOP the leader
    appended on giving that transfer up."""
    net, leader = elected()
    ready = net.handle("a", leader.transfer_leadership("b"))
    (to_b,) = ready.messages
    net.pending.clear()
    net.handle("a", leader.transfer_leadership("c"))
    assert leader.log.last_term == 1 and leader.log.last_index == 3
    net.deliver(drop=lambda m: isinstance(m, TimeoutNow))
    assert not net.step("b", to_b).messages
    assert net.nodes["b"].role is Role.FOLLOWER


# Membership (dissertation chapter 4).


def test_adding_a_server_catches_it_up_and_makes_it_a_member():
    """A configuration applies as soon as it is appended (§4.1): the
    leader replicates to the new server at once, which answers while not
    yet a member and becomes a follower when the entry reaches it."""
    net, leader = elected()
    d = net.add("d")
    assert d.role is Role.NONE
    net.propose("a", "x")
    ready = net.handle("a", leader.propose([change("abcd")]))
    assert "d" in {m.dest for m in ready.messages}
    assert set(leader.status().progress) == {"b", "c", "d"}
    assert leader.configuration.voters == set("abcd")
    net.deliver()
    net.heartbeat("a")
    assert d.role is Role.FOLLOWER and d.leader_id == "a"
    assert list(d.log) == list(leader.log)
    assert net.commands("d") == ["x"]


def test_the_leader_tracks_and_sends_to_exactly_the_other_members():
    """LeaderState keeps its peers in address order (broadcast's order) as
    the configuration changes (§4.1): added, removed, added back."""
    net, leader = elected()
    net.add("d")
    for voters, peers in [("abcd", "bcd"), ("abc", "bc"), ("abcd", "bcd")]:
        ready = net.handle("a", leader.propose([change(voters)]))
        state = leader.leader_state
        assert state.peers == sorted(state.progress) == list(peers)
        assert [m.dest for m in ready.messages] == list(peers)
        net.deliver()
        net.heartbeat("a")
        assert leader.commit_index == leader.log.last_index
        net.tick("a", leader.config.heartbeat_ticks)
        assert [m.dest for m in net.pending] == list(peers)
        net.deliver()


def test_one_configuration_change_at_a_time():
    net, leader = elected()
    net.handle("a", leader.propose([change("abcd")]))
    with pytest.raises(ValueError):
        leader.propose([change("abc")])
    with pytest.raises(ValueError):
        leader.propose([change("abc"), change("ab")])
    net.deliver()
    net.handle("a", leader.propose([change("abc")]))


def test_new_leader_commits_its_noop_before_a_configuration_change():
    """Dissertation §4.1 (as corrected): the new leader's first entry must
    commit before a membership change is appended."""
    a = make_node("a", [config_entry(ABC)], pre_vote=False, last_applied=1)
    while a.role is not Role.CANDIDATE:
        a.tick()
    a.step(RequestVoteReply(1, "b", "a", vote_granted=True))
    assert a.role is Role.LEADER and a.commit_index == 1
    with pytest.raises(MembershipChangeRefused) as raised:
        a.propose([change("abcd")])
    assert raised.value.reason is ChangeRefusal.LEADER_NOT_READY
    assert a.log.last_index == 2  # nothing appended


@pytest.mark.parametrize(
    "proposals, reason",
    [
        ([change("abcde")], ChangeRefusal.NOT_SINGLE_SERVER),
        ([change("abcd"), change("abc")], ChangeRefusal.IN_PROGRESS),
        ([Proposal("{}", type=EntryType.CONFIG)], ChangeRefusal.MALFORMED),
    ],
)
def test_membership_refusals_carry_their_reason(proposals, reason):
    net, leader = elected()
    last_index = leader.log.last_index
    with pytest.raises(MembershipChangeRefused) as raised:
        leader.propose(proposals)
    assert raised.value.reason is reason
    assert leader.log.last_index == last_index  # nothing appended


def test_a_configuration_without_voters_is_refused():
    net, leader = elected(["a"])
    with pytest.raises(MembershipChangeRefused) as raised:
        leader.propose([change("")])
    assert raised.value.reason is ChangeRefusal.NO_VOTERS


def test_check_membership_change_refuses_as_propose_would():
    """One change at a time (§4.1): refused while a CONFIG entry is
    uncommitted, accepted again once it commits; NotLeader elsewhere."""
    net, leader = elected()
    leader.check_membership_change()
    net.handle("a", leader.propose([change("abcd")]))
    with pytest.raises(MembershipChangeRefused) as raised:
        leader.check_membership_change()
    assert raised.value.reason is ChangeRefusal.IN_PROGRESS
    net.deliver()
    leader.check_membership_change()
    with pytest.raises(NotLeader):
        net.nodes["b"].check_membership_change()


def test_status_reports_the_configuration_in_force():
    """Dissertation §4.1: the latest CONFIG entry, committed or not."""
    net, leader = elected()
    assert leader.status().configuration_index == 1
    assert leader.status().configuration_term == 0
    net.handle("a", leader.propose([change("abcd")]))
    status = leader.status()
    assert status.configuration_index == 3 > status.commit_index
    assert status.configuration_term == 1
    assert status.configuration.voters == set("abcd")


def test_malformed_configuration_is_refused():
    net, leader = elected()
    with pytest.raises(ValueError):
        leader.propose([Proposal("{}", type=EntryType.CONFIG)])
    with pytest.raises(ValueError):
        leader.propose([Proposal("not json", type=EntryType.CONFIG)])


def test_removed_leader_steps_down_once_the_change_commits():
    """Dissertation §4.2.2: a leader outside the new configuration keeps
    leading, not counting itself, until that configuration commits, then
    steps down and never campaigns."""
    net, leader = elected()
    ready = net.handle("a", leader.propose([change("bc")]))
    assert leader.role is Role.LEADER
    assert ready.committed_entries == []
    net.deliver()
    assert leader.role is Role.NONE and leader.leader_id is None
    assert leader.commit_index == 3
    run(net, 4 * ELECTION_TICKS)
    assert {net.nodes[n].role for n in "bc"} == {Role.LEADER, Role.FOLLOWER}
    assert leader.role is Role.NONE and leader.current_term == 1


def test_removed_follower_does_not_disrupt():
    """A removed server that keeps campaigning gets no pre-votes and so
    never bumps the cluster's term (§4.2.3, §9.6)."""
    net, leader = elected()
    net.handle("a", leader.propose([change("ab")]))
    net.deliver(drop=lambda m: m.dest == "c")
    net.heartbeat("a")
    run(net, 10 * ELECTION_TICKS)
    assert leader.role is Role.LEADER and leader.current_term == 1
    assert net.nodes["b"].current_term == 1


def test_configuration_reverts_when_its_entry_is_truncated():
    """Dissertation §4.1: a server uses the latest configuration in its
    log, so truncating that entry restores the previous one."""
    node = make_node("c", [config_entry(ABC)])
    add_d = config_entry("abcd", index=2, term=1)
    node.step(AppendEntries(1, "a", "c", 1, 0, (add_d,)))
    assert node.configuration.voters == set("abcd")
    node.step(AppendEntries(2, "b", "c", 1, 0, (Entry(2, 2, EntryType.NOOP),)))
    assert node.configuration.voters == set(ABC)


def assert_configuration_as_if_recomputed(node):
    """The configuration a node keeps across log changes (RaftNode
    _log_changed skips appends without a CONFIG entry) is the one its
    whole log gives, recomputed from scratch."""
    recomputed = membership.latest_configuration(node.log, 0, node.log.first_index)
    assert (node.configuration_index, node.configuration) == recomputed


def test_configuration_follows_appends_and_truncations_above_and_below_it():
    """Dissertation §4.1 through every kind of log change a follower sees."""
    node = make_node("c", [config_entry(ABC)])

    def append(term, leader, prev_index, prev_term, *entries):
        return AppendEntries(term, leader, "c", prev_index, prev_term, entries)

    steps = [
        # Commands after the CONFIG entry leave it in force.
        (append(1, "a", 1, 0, Entry(2, 1), Entry(3, 1)), ABC, 1),
        (append(1, "a", 3, 1, config_entry("abcd", index=4, term=1)), "abcd", 4),
        (append(1, "a", 4, 1, Entry(5, 1), Entry(6, 1)), "abcd", 4),
        # A truncation after the CONFIG entry keeps it.
        (append(2, "b", 4, 1, Entry(5, 2)), "abcd", 4),
        # A truncation at it reverts to the one before; commands follow.
        (append(3, "a", 3, 1, Entry(4, 3)), ABC, 1),
        (append(3, "a", 4, 3, Entry(5, 3)), ABC, 1),
        # A truncation of commands by a CONFIG entry.
        (append(4, "b", 4, 3, config_entry("ab", index=5, term=4)), "ab", 5),
    ]
    for request, voters, index in steps:
        node.step(request)
        assert node.configuration.voters == set(voters), request
        assert node.configuration_index == index, request
        assert_configuration_as_if_recomputed(node)


def test_a_learner_promoted_to_voter_becomes_a_follower():
    node = make_node("d", [config_entry(ABC, ["d"])])
    assert node.role is Role.LEARNER
    promote = config_entry("abcd", index=2, term=1)
    ready = node.step(AppendEntries(1, "a", "d", 1, 0, (promote,)))
    assert node.role is Role.FOLLOWER
    assert ready.soft_state.role is Role.FOLLOWER


def test_status_reports_progress_for_every_other_member_on_the_leader():
    entries = [config_entry(ABC, ["d"])]
    net, leader = elected(["a", "b", "c", "d"], entries=entries)
    status = leader.status()
    assert status.role is Role.LEADER and status.leader_id == "a"
    assert set(status.progress) == {"b", "c", "d"}
    assert status.progress["b"].voter and not status.progress["d"].voter
    assert status.progress["d"].match_index == status.last_log_index == 2
    assert net.nodes["b"].status().progress == {}
