"""Membership changes as the runtime makes them (consensus/membership.py),
mixed with crashes, message loss, partitions and snapshots (a learner
behind a compacted log catches up by InstallSnapshot), across many seeds.

An Operator replays the leader's procedure in ticks: add a server as a
learner, catch it up in rounds (CatchUpRounds), promote it or take it out
again; remove a server, the leader after handing leadership over; transfer
leadership. The simulation's checker holds Raft's safety properties (one
leader per term among them) at every step; this module adds that every
committed configuration is one server away from the one before.

RAFT_SIM_SEEDS sets how many seeds (a third of it here: 33 in the default
test run, 666 in make sim's); RAFT_SIM_SEED replays a single one.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from consensus.catchup import CatchUpRounds
from consensus.core.configuration import Configuration
from consensus.core.messages import EntryType
from consensus.core.node import bootstrap_entries
from consensus.core.ready import Role

from .simulation import Cluster, server_ids
from .test_simulation import DEFAULT_SEEDS

REPLAY = (
    "RAFT_SIM_SEED={seed} .venv/bin/python -m pytest "
    "tests/core/test_simulation_membership.py"
)
SEED_COUNT = max(1, int(os.environ.get("RAFT_SIM_SEEDS", DEFAULT_SEEDS)) // 3)
ONE_SEED = os.environ.get("RAFT_SIM_SEED")
SEEDS = [int(ONE_SEED)] if ONE_SEED else list(range(SEED_COUNT))
CHAOS_STEPS = 5_000
ELECTION_TIMEOUT_TICKS = 10  # RaftConfig's default
# The runtime's 30 s, in ticks of 50 ms, would be 600; a run is shorter.
CATCHUP_TICKS = 150
COMMIT_TICKS = 60
LIVENESS_TICKS = 400


def propose_config(cluster: Cluster, leader: str, configuration: Configuration):
    """Append ``configuration`` at ``leader`` as the runtime does; its
    entry, or None if the core refused (NotLeader, ValueError)."""
    return cluster.propose(configuration.to_json(), type=EntryType.CONFIG, at=leader)


def start_transfer(cluster: Cluster, leader: str, to: str | None) -> bool:
    return cluster.transfer_leadership(to, at=leader)


class Operator:
    """One membership operation at a time, each a generator advanced by
    step() and returning how it ended."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.cluster, self.rng = cluster, rng
        self.current = None
        self.outcomes: Counter[str] = Counter()

    def step(self) -> None:
        if self.current is None:
            self.current = self._pick()
            if self.current is None:
                return
        try:
            next(self.current)
        except StopIteration as stop:
            self.outcomes[stop.value] += 1
            self.current = None

    def _pick(self):
        cluster, rng = self.cluster, self.rng
        leader = cluster.leader()
        if leader is None:
            return None
        configuration = cluster.status(leader).configuration
        outside = [id for id in cluster.ids if id not in configuration.members]
        choices = [self._transfer(leader, rng.choice([None, *cluster.ids]))]
        if outside:
            choices += [self._add(leader, rng.choice(outside))] * 3
        if len(configuration.voters) > 2:
            removable = sorted(configuration.members)
            choices += [self._remove(leader, rng.choice(removable))] * 2
        for id in sorted(configuration.learners):
            choices.append(self._add(leader, id))  # resume an interrupted add
        return rng.choice(choices)

    def _leads(self, leader: str, term: int) -> bool:
        status = self.cluster.status(leader)
        return status is not None and (status.role, status.term) == (Role.LEADER, term)

    def _change(self, leader: str, change):
        """Propose change(configuration) at ``leader``; wait for the commit."""
        cluster = self.cluster
        status = cluster.status(leader)
        if status is None or status.role is not Role.LEADER:
            return "not leader"
        configuration = change(status.configuration)
        if configuration is None:
            return "refused"
        if configuration == status.configuration:
            return "committed"
        entry = propose_config(cluster, leader, configuration)
        if entry is None:
            return "refused"
        deadline = cluster.now + COMMIT_TICKS
        while cluster.now < deadline:
            yield
            status = cluster.status(leader)
            if status is None or status.term != entry.term:
                return "interrupted"
            held = cluster.entry(leader, entry.index)
            if status.commit_index >= entry.index and held == entry:
                return "committed"
        return "timeout"

    def _add(self, leader: str, address: str):
        term = self.cluster.status(leader).term

        def add_learner(c):
            if address in c.members:
                return c
            return Configuration(c.voters, c.learners | {address})

        outcome = yield from self._change(leader, add_learner)
        if outcome != "committed":
            return f"add {outcome}"
        cluster = self.cluster
        rounds = CatchUpRounds(ELECTION_TIMEOUT_TICKS, cluster.now + CATCHUP_TICKS)
        while True:
            if not self._leads(leader, term):
                return "add interrupted"
            status = cluster.status(leader)
            peer = status.progress.get(address)
            if peer is None:
                return "add interrupted"
            verdict = rounds.observe(
                cluster.now, status.last_log_index, peer.match_index
            )
            if verdict is not None:
                break
            yield
        if verdict:
            change = lambda c: (  # noqa: E731
                Configuration(c.voters | {address}, c.learners - {address})
                if address in c.learners
                else None
            )
            outcome = yield from self._change(leader, change)
            return f"add {outcome}"
        outcome = yield from self._change(
            leader, lambda c: Configuration(c.voters, c.learners - {address})
        )
        return f"catch-up failed, learner removal {outcome}"

    def _remove(self, leader: str, address: str):
        cluster = self.cluster

        def remove(c):
            if address not in c.members or c.voters == {address}:
                return None
            return Configuration(c.voters - {address}, c.learners - {address})

        if address == leader:
            # Hand leadership over first (dissertation §3.10), then the new
            # leader removes the old one; if that fails, remove itself.
            moved = yield from self._hand_over(leader, None)
            if moved:
                leader = cluster.leader()
                if leader is None or leader == address:
                    return "remove interrupted"
        outcome = yield from self._change(leader, remove)
        return f"remove {outcome}"

    def _transfer(self, leader: str, to: str | None):
        moved = yield from self._hand_over(leader, to)
        return "transfer done" if moved else "transfer failed"

    def _hand_over(self, leader: str, to: str | None):
        cluster = self.cluster
        if not start_transfer(cluster, leader, to):
            return False
        deadline = cluster.now + 2 * ELECTION_TIMEOUT_TICKS + 5
        while cluster.now < deadline:
            yield
            other = cluster.leader()
            if other is not None and other != leader:
                return True
        return False


class Faults:
    """Message loss, delay, duplication, crashes and partitions."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.cluster, self.rng = cluster, rng
        self.loss = rng.choice([0.0, 0.02, 0.1])
        self.crashes = rng.choice([0.0, 0.003, 0.01])
        self.partitions = rng.choice([0.0, 0.003, 0.01])
        self.which = rng.choice([None, "random"])
        cluster.max_latency = rng.choice([0, 1, 2])

    def __str__(self) -> str:
        return (
            f"loss={self.loss} crashes={self.crashes} partitions={self.partitions} "
            f"which={self.which} latency={self.cluster.max_latency}"
        )

    def step(self) -> bool:
        """One fault, or False to let the caller do something else."""
        cluster, rng = self.cluster, self.rng
        r = rng.random()
        if r < self.crashes:
            down = [id for id in cluster.ids if not cluster.server(id).up]
            if down and rng.random() < 0.6:
                cluster.restart(rng.choice(down))
            elif len(down) < 2:
                up = [id for id in cluster.ids if cluster.server(id).up]
                cluster.crash(rng.choice(up))
            return True
        r -= self.crashes
        if r < self.partitions:
            if not cluster.connected_everywhere() and rng.random() < 0.5:
                cluster.heal()
            else:
                ids = list(cluster.ids)
                rng.shuffle(ids)
                cluster.partition(ids[: rng.randint(1, len(ids) - 1)])
            return True
        return False

    def deliver(self) -> None:
        if self.rng.random() < self.loss:
            self.cluster.drop(self.which)
        else:
            self.cluster.deliver(self.which)


def check_single_server_changes(cluster: Cluster) -> list[Configuration]:
    """Every committed configuration differs from the one before it by one
    server at most (dissertation §4.1), and keeps a voter."""
    longest = max((cluster.applied(id) for id in cluster.ids), key=len)
    configurations = [
        Configuration.from_json(e.command)
        for e in longest
        if e.type is EntryType.CONFIG
    ]
    for before, after in zip(configurations, configurations[1:], strict=False):
        changed = (before.voters ^ after.voters) | (before.learners ^ after.learners)
        moved = {id for id in changed if id in before.members and id in after.members}
        assert len(changed - moved) + len(moved) <= 1, (before, after)
        assert after.voters, after
    return configurations


def settle(cluster: Cluster, which) -> None:
    """Heal and restart everything: a leader must commit a command on
    every voter of its configuration."""
    cluster.heal()
    for id in cluster.ids:
        if not cluster.server(id).up:
            cluster.restart(id)
    deadline = cluster.now + LIVENESS_TICKS
    entry, proposed_at = None, None
    while cluster.now < deadline:
        leader = cluster.leader()
        if leader is not None and entry is not None:
            voters = cluster.status(leader).configuration.voters
            if all(
                len(cluster.applied(id)) >= entry.index
                and cluster.applied(id)[entry.index - 1] == entry
                for id in voters
            ):
                return
        # Propose again now and then: a leader may lose its term first.
        if leader is not None and (
            proposed_at is None or cluster.now - proposed_at >= 40
        ):
            entry = cluster.propose(f"liveness-{cluster.now}") or entry
            proposed_at = cluster.now
        if cluster.deliver(which) is None:
            cluster.tick_all()
        cluster.assert_safety()
    raise AssertionError("liveness: nothing committed on every voter in time")


def run_seed(seed: int) -> tuple[Cluster, Operator]:
    rng = random.Random(seed)
    ids = server_ids(5)
    members = ids[:3]
    logs = {id: bootstrap_entries(members) if id in members else [] for id in ids}
    config = {
        "max_append_entries": rng.choice([2, 8, 1024]),
        # Odd seeds: thrifty replication, as in test_simulation.run_seed.
        "thrifty": seed % 2 == 1,
    }
    cluster = Cluster(n=5, seed=seed, rng=rng, logs=logs, **config)
    operator, faults = Operator(cluster, rng), Faults(cluster, rng)
    proposals = rng.choice([0.03, 0.1])
    # Raft §7: a random server snapshots and compacts now and then.
    snapshots = rng.choice([0.0, 0.005, 0.02])
    try:
        for step in range(CHAOS_STEPS):
            r = rng.random()
            if faults.step():
                pass
            elif r < 0.08 or not cluster.deliverable():
                cluster.tick_all()
            elif r < 0.08 + proposals:
                cluster.propose(f"c{step}")
            elif r < 0.16 + proposals:
                operator.step()
            elif r < 0.16 + proposals + snapshots:
                cluster.take_snapshot(rng.choice(ids), rng.choice([0, 2]))
            else:
                faults.deliver()
            cluster.assert_safety()
        settle(cluster, faults.which)
        check_single_server_changes(cluster)
    except Exception as exc:
        raise AssertionError(
            f"seed {seed} failed: {type(exc).__name__}: {exc}\n"
            f"replay: {REPLAY.format(seed=seed)}\n{faults} {dict(operator.outcomes)}\n"
            f"{cluster.describe()}"
        ) from exc
    return cluster, operator


def removal_cluster(seed: int) -> tuple[Cluster, str, str]:
    """Three voters and a leader; returns (cluster, leader, a follower)."""
    cluster = Cluster(n=3, seed=seed)
    assert cluster.run_until(lambda: cluster.leader() is not None)
    cluster.stabilize()
    leader = cluster.leader()
    return cluster, leader, next(id for id in cluster.ids if id != leader)


def test_a_removed_server_left_running_does_not_raise_the_term():
    """Dissertation §4.2.3: the leader stops replicating to a server as soon
    as it appends the configuration without it, so the removed server never
    learns of its removal and keeps pre-voting; the others, hearing from
    their leader, refuse, and nobody's term moves."""
    cluster, leader, removed = removal_cluster(seed=3)
    term = cluster.status(leader).term
    rest = Configuration(frozenset(cluster.ids) - {removed})
    assert propose_config(cluster, leader, rest) is not None
    cluster.stabilize()
    for _ in range(50 * ELECTION_TIMEOUT_TICKS):
        cluster.tick_all()
        cluster.stabilize()
        assert (cluster.leader(), cluster.status(leader).term) == (leader, term)
    status = cluster.status(removed)
    assert (status.role, status.leader_id) == (Role.FOLLOWER, None)
    cluster.assert_safety()


def test_a_server_outside_the_configuration_never_campaigns():
    ids = server_ids(4)
    logs = {id: bootstrap_entries(ids[:3]) for id in ids[:3]}
    cluster = Cluster(n=4, seed=5, logs={**logs, ids[3]: []})
    for _ in range(30 * ELECTION_TIMEOUT_TICKS):
        cluster.tick(ids[3])
    assert not cluster.deliverable()
    assert (cluster.role(ids[3]), cluster.status(ids[3]).term) == (Role.NONE, 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_membership_changes_under_faults(seed):
    run_seed(seed)


def test_changes_happen_across_the_seeds():
    """The runs do exercise the procedure: adds complete, catch-ups fail,
    removals and transfers happen."""
    outcomes = Counter()
    for seed in range(12):
        _, operator = run_seed(10_000 + seed)
        outcomes.update(operator.outcomes)
    assert outcomes["add committed"] > 0, outcomes
    assert outcomes["remove committed"] > 0, outcomes
    assert outcomes["transfer done"] > 0, outcomes
