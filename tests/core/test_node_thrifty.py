"""Thrifty replication (consensus/core/leader.py): a leader sends new
entries at once only to the voters a commit needs, the first to answer in
its term; the others get them with the next heartbeat. The rules one by
one; the random runs of test_simulation run it on odd seeds."""

from consensus.core.messages import AppendEntries

from .test_node_helpers import Net, config_entry

ABC = ["a", "b", "c"]


def elected(**config):
    net = Net(ABC, thrifty=True, **config)
    net.elect("a")
    return net, net.nodes["a"]


def sent_to(net, dest):
    return [m for m in net.pending if isinstance(m, AppendEntries) and m.dest == dest]


def test_new_entries_go_at_once_to_a_majority_only():
    net, leader = elected()
    eager = leader.leader_state.eager
    assert len(eager) == 1  # with the leader, a majority of three
    (lazy,) = {"b", "c"} - eager
    net.propose("a", "x")
    assert [m.dest for m in net.pending] == list(eager)
    net.deliver()
    assert net.commands("a") == ["x"]
    assert net.nodes[lazy].log.last_index < leader.log.last_index


def test_a_waiting_voter_gets_everything_since_the_last_heartbeat_at_once():
    net, leader = elected()
    (lazy,) = {"b", "c"} - leader.leader_state.eager
    for command in "xyz":
        net.propose("a", command)
        net.deliver()
    assert net.commands("a") == list("xyz")
    net.tick("a", leader.config.heartbeat_ticks)
    (request,) = sent_to(net, lazy)
    assert [e.command for e in request.entries] == list("xyz")
    net.deliver()
    # Its answer sends nothing more: nothing is new.
    assert net.pending == []
    net.heartbeat("a")  # carries the commit index
    assert net.commands(lazy) == list("xyz")


def test_an_eager_voter_that_stops_answering_loses_its_place():
    net, leader = elected()
    (eager,) = leader.leader_state.eager
    (lazy,) = {"b", "c"} - {eager}
    net.down.add(eager)
    net.propose("a", "x")
    net.deliver()
    assert net.commands("a") == []
    # Behind for a heartbeat interval without progress: the place is
    # freed, every voter gets the entry, and the other one takes it.
    for _ in range(leader.config.heartbeat_ticks):
        net.tick("a")
    net.deliver()
    assert net.commands("a") == ["x"]
    assert leader.leader_state.eager == {lazy}
    net.propose("a", "y")
    assert [m.dest for m in net.pending] == [lazy]


def test_a_read_round_goes_to_every_voter():
    """Dissertation §6.4: a read waits for a round a majority answers; a
    waiting voter is part of it, and so catches up with it."""
    net, leader = elected()
    (lazy,) = {"b", "c"} - leader.leader_state.eager
    net.propose("a", "x")
    net.deliver()
    net.handle("a", leader.read_index([1]))
    (request,) = sent_to(net, lazy)
    assert [e.command for e in request.entries] == ["x"]


def test_a_voter_catching_up_gets_its_next_batch_at_once():
    net, leader = elected(max_append_entries=2)
    (lazy,) = {"b", "c"} - leader.leader_state.eager
    net.down.add(lazy)
    for command in "pqrst":
        net.propose("a", command)
        net.deliver()
    net.down.clear()
    net.heartbeat("a")
    # Five entries, two a request: three requests in one delivery.
    batches = [
        [e.command for e in m.entries]
        for m in net.delivered
        if isinstance(m, AppendEntries) and m.dest == lazy and m.entries
    ]
    assert batches[-3:] == [["p", "q"], ["r", "s"], ["t"]]


def test_a_voter_that_waits_never_falls_further_behind_than_the_max_lag():
    """Kept within the entries a snapshot leaves in the log (the runtime
    sets thrifty_max_lag so), it is never sent a snapshot for waiting."""
    net, leader = elected(thrifty_max_lag=3)
    (lazy,) = {"b", "c"} - leader.leader_state.eager
    for command in "xy":
        net.propose("a", command)
        assert sent_to(net, lazy) == []
        net.deliver()
    net.propose("a", "z")  # three behind: sent at once
    assert [e.command for e in sent_to(net, lazy)[0].entries] == list("xyz")


def test_learners_get_new_entries_at_once():
    """A learner is being caught up (dissertation §4.2.1) and counts for
    no majority: it never waits for a heartbeat."""
    net = Net(["a", "b", "c", "d"], entries=[config_entry(ABC, ["d"])], thrifty=True)
    net.elect("a")
    net.propose("a", "x")
    dests = {m.dest for m in net.pending}
    assert "d" in dests and len(dests & {"b", "c"}) == 1


def test_off_every_follower_gets_new_entries_at_once():
    net = Net(ABC, thrifty=False)
    net.elect("a")
    net.propose("a", "x")
    assert sorted(m.dest for m in net.pending) == ["b", "c"]
