"""Schedules replay from their seed, new operations join them through the
registry, every fault is healed, and partitions become the right nftables
rules. No processes or namespaces: milliseconds each."""

import pytest

from tests.faults import disks, nemesis, netns, snapshot_ops
from tests.faults.powercut_ops import POWER
from tests.faults.workload import History

ALL = frozenset({nemesis.NETNS, POWER})


def test_the_same_seed_gives_the_same_schedule():
    first = nemesis.make_schedule(123, 120, 3, ALL)
    again = nemesis.make_schedule(123, 120, 3, ALL)
    assert [str(s) for s in first] == [str(s) for s in again]
    assert [str(s) for s in nemesis.make_schedule(124, 120, 3, ALL)] != [
        str(s) for s in first
    ]


def test_a_schedule_lasts_its_duration():
    steps = nemesis.make_schedule(5, 60, 3, ALL)
    total = sum(s.hold_s + s.gap_s for s in steps)
    assert 60 <= total < 60 + 12


def test_without_namespaces_only_process_faults_are_drawn():
    steps = nemesis.make_schedule(7, 600, 3, frozenset())
    assert {s.op for s in steps} == {
        "kill",
        "kill_majority",
        "crash_all",
        "pause",
        "transfer",
        "lag_follower",
    }


def test_with_namespaces_every_kind_of_fault_is_drawn():
    steps = nemesis.make_schedule(7, 2000, 5, ALL)
    assert {s.op for s in steps} == set(nemesis.REGISTRY)


def test_a_schedule_can_be_limited_to_named_operations():
    steps = nemesis.make_schedule(7, 100, 3, ALL, names=["loss", "bridge"])
    assert {s.op for s in steps} == {"loss", "bridge"}
    with pytest.raises(KeyError, match="no such nemesis"):
        nemesis.make_schedule(7, 100, 3, ALL, names=["nope"])


class FakeBed:
    size = 3
    capabilities = ALL

    def __init__(self):
        self.calls = []

    def resolve(self, target):
        return {"leader": 1, "follower": 2}.get(target, target)

    def last_log_index(self, i):
        return 100

    def wait_compacted_past(self, index, timeout, away):
        self.calls.append(("wait_compacted_past", index, away))
        return index + 31

    def wait_line(self, i, pattern, timeout):
        return "Restored snapshot through 140 from leader (4096 bytes)"

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_a_registered_operation_joins_schedules_and_runs():
    @nemesis.register
    class Snapshot(nemesis.Nemesis):
        name = "test_snapshot"
        weight = 100.0

        def plan(self, rng, size):
            return {"target": rng.randrange(size)}

        def start(self, bed, params):
            bed.compact(params["target"])
            return nemesis.Active("compacted", lambda: bed.uncompact(params["target"]))

    try:
        steps = nemesis.make_schedule(1, 30, 3, frozenset())
        assert "test_snapshot" in {s.op for s in steps}
        bed, history = FakeBed(), History()
        ours = [s for s in steps if s.op == "test_snapshot"][:1]
        assert nemesis.run_schedule(bed, history, ours, lambda s: None) == 1
        target = ours[0].params["target"]
        assert bed.calls == [("compact", target), ("uncompact", target)]
    finally:
        del nemesis.REGISTRY["test_snapshot"]


def test_a_fault_is_healed_even_when_the_run_is_interrupted():
    bed, history = FakeBed(), History()
    step = nemesis.Step("pause", {"target": "leader"}, 1.0, 1.0)

    def interrupted(seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nemesis.run_schedule(bed, history, [step], interrupted)
    assert bed.calls == [("pause", 1), ("resume", 1)]
    assert [e.kind for e in history.events] == ["start", "note", "heal"]


@pytest.mark.parametrize(
    "step, blocked",
    [
        (
            nemesis.Step("isolate", {"target": "leader"}),
            {(1, 0), (0, 1), (1, 2), (2, 1)},
        ),
        (nemesis.Step("split", {"minority": [2]}), {(2, 0), (0, 2), (2, 1), (1, 2)}),
        (
            nemesis.Step("bridge", {"bridge": 1, "left": [0], "right": [2]}),
            {(0, 2), (2, 0)},
        ),
        (
            nemesis.Step("one_way", {"target": "leader", "direction": "out"}),
            {(1, 0), (1, 2)},
        ),
        (nemesis.Step("one_way", {"target": 0, "direction": "in"}), {(1, 0), (2, 0)}),
    ],
)
def test_partitions_block_the_right_directions(step, blocked):
    bed = FakeBed()
    active = nemesis.REGISTRY[step.op].start(bed, step.params)
    assert bed.calls == [("block", blocked, 0)]
    active.heal()
    assert bed.calls[-1] == ("unblock",)


def test_network_rules_drop_the_named_directions_only(monkeypatch):
    network = netns.Network(3)
    network.hosts = ["198.18.200.10", "198.18.200.11", "198.18.200.12"]
    loaded = {}
    monkeypatch.setattr(
        network,
        "_load",
        lambda ns, rules_in, rules_out: loaded.update({ns: (rules_in, rules_out)}),
    )
    network.apply({(0, 1)}, loss_percent=20)
    n0, n1, n2 = network.namespaces
    assert loaded[n0][1] == ["ip daddr 198.18.200.11 drop"]
    assert loaded[n1][0][0] == "ip saddr 198.18.200.10 drop"
    assert loaded[n2][1] == []
    for rules_in, _ in loaded.values():
        assert rules_in[-1].endswith("numgen random mod 100 < 20 drop")
        assert "198.18.200.1 " not in rules_in[-1]  # the test process keeps its link
    network.heal()
    assert all(v == ([], []) for v in loaded.values())


def test_interface_names_fit_the_kernel_limit_for_any_pid(monkeypatch):
    monkeypatch.setattr(netns.os, "getpid", lambda: 4194304)  # pid_max on 64-bit
    monkeypatch.setattr(netns, "_counter", iter([1295]))  # "zz"
    network = netns.Network(9)
    assert all(len(name) <= 15 for name in [network.bridge, *network.veths])
    assert netns._owner_pid(network.bridge) == 4194304
    assert netns._owner_pid(network.veths[0]) == 4194304
    assert netns._owner_pid(network.namespaces[0]) == 4194304


def test_a_covering_schedule_runs_every_operation_even_when_short():
    steps = nemesis.make_schedule(3, 1, 3, ALL, cover=True)
    names = {op.name for op in nemesis.available(ALL, 3)}
    assert {s.op for s in steps} == names
    assert len(steps) == len(names)


def test_a_combined_fault_starts_both_and_heals_in_reverse():
    step = next(s for s in nemesis.make_schedule(11, 500, 3, ALL) if s.op == "combined")
    bed = FakeBed()
    active = nemesis.REGISTRY["combined"].start(bed, step.params)
    started = list(bed.calls)
    active.heal()
    healed = bed.calls[len(started) :]
    assert started[0][0] == "block" and started[1][0] in ("kill", "pause")
    assert healed[0][0] in ("restart", "resume") and healed[1] == ("unblock",)


def test_without_root_the_namespace_tests_say_why(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert "root" in netns.unavailable_reason()


def test_without_nft_the_namespace_tests_name_the_package(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        netns.shutil, "which", lambda tool: None if tool == "nft" else "/x"
    )
    assert "nftables" in netns.unavailable_reason()


class MembershipBed(FakeBed):
    """Five servers; ``voters`` is the configuration the leader reports."""

    size = 5

    def __init__(self, voters):
        super().__init__()
        import random

        self.rng = random.Random(0)
        self.voters = voters

    def configuration(self):
        return {i: i in self.voters for i in range(self.size)}

    def live(self):
        return [0, 1, 2, 3, 4]

    def change_membership(self, kind, i, via):
        self.calls.append((kind, i))
        return "200"


@pytest.mark.parametrize(
    "op, voters, expected",
    [
        ("remove_server", {0, 1, 2, 3, 4}, ("remove", 3)),
        ("remove_server", {0, 1, 2, 4}, "remove"),  # 3 is gone: another voter
        ("remove_server", {0, 1, 2}, None),  # at the minimum: skipped
        ("remove_leader", {0, 1, 2, 3}, ("remove", 1)),
        ("remove_leader", {0, 1, 2}, None),
        ("add_server", {0, 1, 2, 4}, ("add", 3)),
        ("add_server", {0, 1, 2, 3, 4}, None),  # nothing to add: skipped
    ],
)
def test_membership_changes_keep_three_voters(op, voters, expected):
    bed = MembershipBed(voters)
    params = {"during": "pause", "pause": {"target": 0}, "after_s": 0.0, "target": 3}
    active = nemesis.REGISTRY[op].start(bed, params)
    active.heal()
    changes = [c for c in bed.calls if c[0] in ("add", "remove")]
    if expected is None:
        assert bed.calls[0][0] == "membership_outcome" and changes == []
        assert "skipped" in active.description
    elif isinstance(expected, str):
        assert len(changes) == 1 and changes[0][0] == expected
        assert changes[0][1] in voters
    else:
        assert changes == [expected]
    if changes:  # the fault starts once the request is sent, and is healed
        assert [c[0] for c in bed.calls if c[0] in ("pause", "resume")] == [
            "pause",
            "resume",
        ]


def test_membership_changes_need_a_pool_above_three():
    assert "add_server" not in {op.name for op in nemesis.available(ALL, 3)}
    assert "remove_leader" in {op.name for op in nemesis.available(ALL, 5)}


POWER_OPS = {
    "power_cut", "power_cut_majority", "power_cut_all",
    "power_cut_unsynced_checkpoint", "disk_error", "power_cut_after_restore",
}  # fmt: skip


def test_power_operations_need_lazyfs_disks():
    plain = {op.name for op in nemesis.available(frozenset({nemesis.NETNS}), 5)}
    assert not plain & POWER_OPS
    assert POWER_OPS <= {op.name for op in nemesis.available(frozenset({POWER}), 3)}


@pytest.mark.parametrize("op", sorted(POWER_OPS))
def test_a_power_operation_restarts_what_it_cut(op):
    schedule = nemesis.make_schedule(5, 400, 3, ALL, cover=True)
    step = next(s for s in schedule if s.op == op)
    bed = FakeBed()
    active = nemesis.REGISTRY[op].start(bed, step.params)
    started = list(bed.calls)
    active.heal()
    healed = bed.calls[len(started) :]
    if op == "disk_error":
        assert started[0][0] == "disk_fail" and healed == [("disk_heal", started[0][1])]
        return
    cut = next(call for call in started if call[0] == "power_cut")
    assert sorted(call[1] for call in healed) == sorted(cut[1])
    assert {call[0] for call in healed} == {"restart"}


def test_without_fuse_the_power_tests_say_why(monkeypatch):
    monkeypatch.setattr(disks.os, "geteuid", lambda: 1000)
    assert "root" in disks.unavailable_reason()
    monkeypatch.setattr(disks.os.path, "exists", lambda path: False)
    assert "/dev/fuse" in disks.unavailable_reason()


@pytest.mark.parametrize(
    "capabilities, way, how",
    [
        (frozenset(), "kill", ["kill", "restart"]),
        (frozenset(), "pause", ["pause", "resume"]),
        (ALL, "isolate", ["block", "unblock"]),
        (ALL, "power_cut", ["power_cut", "restart"]),
    ],
)
def test_a_lagging_follower_comes_back_once_the_leader_compacted_past_it(
    capabilities, way, how
):
    """lag_follower leaves a follower behind until the leader's log starts
    past the follower's last index (the leader must then send a snapshot),
    in each way the bed offers."""
    ways = [
        h for h, needs in snapshot_ops.HOW if needs is None or needs in capabilities
    ]
    fraction = (ways.index(way) + 0.5) / len(ways)
    bed = FakeBed()
    bed.capabilities = capabilities
    params = {"target": "follower", "how": fraction}
    active = nemesis.REGISTRY["lag_follower"].start(bed, params)
    assert bed.calls[0][0] == how[0] and way in active.description
    active.heal()
    calls = [c for c in bed.calls if c[0] != "note"]
    assert calls[-2] == ("wait_compacted_past", 100 + snapshot_ops.MARGIN, 2)
    assert calls[-1][0] == how[1]


def test_a_follower_loses_power_right_after_it_restored_a_snapshot():
    bed = FakeBed()
    params = {"target": "follower"}
    active = nemesis.REGISTRY["power_cut_after_restore"].start(bed, params)
    assert [c[0] for c in bed.calls] == [
        "kill",
        "wait_compacted_past",
        "restart",
        "power_cut",
    ]
    assert bed.calls[-1] == ("power_cut", [2]) and "Restored" in active.description
    active.heal()
    assert bed.calls[-1] == ("restart", 2)
