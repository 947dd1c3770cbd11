"""ReadIndex (dissertation §6.4): a leader confirms a read once a majority
answered a request sent after it, with the commit index of an entry of its
term; a deposed leader confirms none. The random runs of test_simulation
check every confirmation against what had completed before the read; here,
the rules one by one, and that the check catches a read path without the
round."""

from __future__ import annotations

import pytest

from consensus.core.messages import AppendEntries
from consensus.core.node import NotLeader
from consensus.core.read_index import ReadQueue
from consensus.core.ready import ReadState, Role

from .simulation import Cluster
from .test_simulation import elect_any, run_seed


def confirmed(cluster: Cluster) -> dict[int, int]:
    """ctx -> index of every read confirmed so far (from the trace)."""
    return {
        event[4].ctx: event[4].index
        for event in cluster.trace
        if event[2] == "read confirmed"
    }


def test_a_read_waits_for_a_majority_round_then_gets_the_commit_index():
    cluster = Cluster(n=3, seed=3)
    leader = elect_any(cluster)
    cluster.stabilize()
    entry = cluster.propose("x")
    cluster.stabilize()
    ctx = cluster.read()
    assert ctx is not None and ctx not in confirmed(cluster)
    # The round: a heartbeat to each follower, and their answers.
    sent = [m for m in (e.message for e in cluster.pending)
            if isinstance(m, AppendEntries) and m.source == leader]  # fmt: skip
    assert len(sent) == 2
    cluster.stabilize()
    assert confirmed(cluster)[ctx] == entry.index


def test_a_sole_voter_confirms_at_once():
    cluster = Cluster(n=1, seed=1)
    elect_any(cluster)
    entry = cluster.propose("x")
    ctx = cluster.read()
    assert confirmed(cluster)[ctx] == entry.index


def test_a_follower_refuses():
    cluster = Cluster(n=3, seed=3)
    leader = elect_any(cluster)
    cluster.stabilize()
    follower = next(id for id in cluster.ids if id != leader)
    with pytest.raises(NotLeader):
        cluster.server(follower).node.read_index([1])


def test_a_new_leader_holds_reads_until_an_entry_of_its_term_commits():
    cluster = Cluster(n=3, seed=5)
    leader = elect_any(cluster)
    # Before the NOOP of the term is committed (nothing delivered yet).
    node = cluster.server(leader).node
    assert node.log.term_at(node.commit_index) != node.current_term
    ctx = cluster.read()
    assert ctx not in confirmed(cluster)
    cluster.stabilize()
    assert confirmed(cluster)[ctx] == cluster.server(leader).node.commit_index


def test_a_deposed_leader_confirms_no_read():
    # Without check quorum the isolated leader keeps thinking it leads.
    cluster = Cluster(n=5, seed=9, check_quorum=False)
    old = elect_any(cluster)
    cluster.stabilize()
    cluster.isolate(old)
    others = [id for id in cluster.ids if id != old]
    assert cluster.run_until(lambda: cluster.leader() not in (None, old))
    cluster.propose("after the partition")
    cluster.stabilize()
    assert cluster.role(old) is Role.LEADER
    ctx = cluster.read(at=old)
    assert ctx is not None
    cluster.stabilize()
    assert ctx not in confirmed(cluster)
    cluster.heal()
    cluster.stabilize()
    for _ in range(30):
        cluster.tick_all()
        cluster.stabilize()
    assert ctx not in confirmed(cluster)
    assert cluster.leader() in others


def test_reads_asked_together_share_one_round():
    cluster = Cluster(n=3, seed=3)
    leader = elect_any(cluster)
    cluster.stabilize()
    node = cluster.server(leader).node
    before = len(cluster.pending)
    ready = node.read_index([101, 102, 103])
    assert len([m for m in ready.messages if isinstance(m, AppendEntries)]) == 2
    assert before == len(cluster.pending)  # the Ready was not handled here


FIRST_CATCHING_SEED = 49


def test_the_check_catches_reads_served_without_the_round(monkeypatch):
    """A broken read path: every read confirmed at once, as a deposed
    leader serving its own state would. Some random run must flag it."""

    def at_once(self, leader_id, voters):
        done = list(self._pending)
        self._pending.clear()
        return [ReadState(r.ctx, r.index) for r in done]

    monkeypatch.setattr(ReadQueue, "confirmed", at_once)
    caught = None
    # Seeds 0-199 as before, but 49 first: in plain order the first that
    # catches it (then 60, 66, 198) came after 49 that do not. The same
    # seeds, so it passes or fails as before, in a fraction of the time.
    seeds = [s for s in range(200) if s != FIRST_CATCHING_SEED]
    for seed in [FIRST_CATCHING_SEED, *seeds]:
        try:
            run_seed(seed)
        except AssertionError as exc:
            if "stale read" in str(exc):
                caught = seed
                break
    assert caught is not None, "no seed caught reads without the round"
