"""Short fault runs against real ``runnode`` processes. The default test
command runs one of them (ALL_RUNS below says which); ``make faults``
(RAFT_FAULTS=all) runs every one. Each prints its seed; a failure prints
the schedule, the violations and the command that replays it alone:

    RAFT_FAULTS=all RAFT_FAULT_SEED=<seed> .venv/bin/python -m pytest tests/faults -k <test>
"""

import os

import pytest

from . import runner
from .conftest import netns_unavailable

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

# RAFT_FAULTS=all (make faults) runs every short fault run; without it the
# default test run keeps the broadest one: every network and process
# operation (in namespaces). Where namespaces are unavailable the loopback
# run (kills, pauses, transfers, a follower left behind) stands in for it.
# The power-cut run on lazyfs (75-100 s on 2 cores, the longest test the
# default run had) is make faults' alone; the default run keeps lazyfs's
# page-cache model (test_lazyfs.py) and real lazyfs mounts whose disk fails
# under a node (test_disk_failure.py).
ALL_RUNS = os.environ.get("RAFT_FAULTS", "") == "all"
LONGER_RUN = "a longer fault run, not in the default test run: make faults"


def longer_run():
    """Skip, unless RAFT_FAULTS=all, a run the default test run leaves out."""
    if not ALL_RUNS:
        pytest.skip(LONGER_RUN)


# The five-server run starts with these (then draws them among the rest).
MEMBERSHIP_FIRST = ["remove_server", "add_server", "remove_leader", "add_server"]


def run_and_check(config, base_dir, request):
    """Run, check, and make sure the run exercised snapshots (Raft §7,
    runner.DEFAULT_ENV's small settings): every schedule here holds
    lag_follower, so at least one follower restored a leader's snapshot."""
    result = runner.run(config, base_dir)
    snapshots = result.stats["snapshots"]
    short = []
    if snapshots["taken"] < config.size:
        short.append(f"only {snapshots['taken']} snapshots taken")
    if snapshots["restored"] < 1:
        short.append("no follower restored a snapshot")
    if short and result.ok:
        result.artifacts = runner.keep(base_dir, config.seed)
    report = result.report(test=request.node.name)
    print(report)
    assert result.ok, report
    assert not short, f"{'; '.join(short)}:\n{report}"
    return result


def test_loopback_kills_and_pauses(fault_seed, tmp_path, request):
    """Without namespaces: SIGKILL + restart (one, a majority, all),
    SIGSTOP/SIGCONT and a follower left behind the leader's compacted log,
    on 127.0.0.1. Runs everywhere, root or not. In the default test run
    only where namespaces are unavailable: otherwise the three-server
    namespace run does each of these operations and the network ones."""
    if not ALL_RUNS and netns_unavailable() is None:
        pytest.skip(
            f"{LONGER_RUN} (test_netns_three_servers_every_fault runs its operations)"
        )
    config = runner.RunConfig(
        seed=fault_seed, size=3, netns=False, duration_s=20, cover=True
    )
    run_and_check(config, tmp_path, request)


def test_netns_three_servers_every_fault(
    fault_seed, tmp_path, request, network_namespaces
):
    """Each server in its own namespace: every operation at least once
    (isolated leader, majority/minority, bridge, one-way, loss, kills,
    pauses, a follower left behind), then random ones."""
    config = runner.RunConfig(
        seed=fault_seed, size=3, netns=True, duration_s=40, cover=True, hold_scale=0.6
    )
    run_and_check(config, tmp_path, request)


def test_netns_five_servers(fault_seed, tmp_path, request, network_namespaces):
    """Five servers: partitions with two-server minorities, a bridge between
    two pairs, and membership changes (remove a voter, remove the leader,
    add a removed server back; at least 3 voters), often under a kill, a
    pause or a partition; a follower left behind."""
    longer_run()
    config = runner.RunConfig(
        seed=fault_seed,
        size=5,
        netns=True,
        duration_s=35,
        clients=5,
        first=[*MEMBERSHIP_FIRST, "lag_follower"],
    )
    run_and_check(config, tmp_path, request)


# The power-cut operations (powercut_ops.py), the plain kill, a follower
# left behind and one whose power is cut as it restores a snapshot
# (snapshot_ops.py), for the lazyfs runs.
POWER_OPS = [
    "power_cut",
    "power_cut_majority",
    "power_cut_all",
    "disk_error",
    "kill",
    "lag_follower",
    "power_cut_after_restore",
]


def test_lazyfs_power_cuts(fault_seed, tmp_path, request, lazyfs_disks):
    """Each server's data directory on its own lazyfs mount: power cuts of
    one server (often the leader), of a majority and of all at once lose
    whatever was not fsynced; a disk fails writes or fsyncs for a while.
    Every acknowledged command must survive."""
    longer_run()
    config = runner.RunConfig(
        seed=fault_seed,
        size=3,
        netns=False,
        duration_s=20,
        cover=True,
        nemeses=POWER_OPS,
        disks="lazyfs",
        warmup_s=1.0,
    )
    result = run_and_check(config, tmp_path, request)
    assert result.stats["power"]["disk_cuts"] >= 6, result.stats["power"]


def test_lazyfs_lying_fsync_is_caught(fault_seed, tmp_path, request, lazyfs_disks):
    """The harness itself: with every fsync ignored (lazyfs fsync=lie), a
    power cut of every server loses acknowledged commands, and the checker
    must say so."""
    longer_run()
    config = runner.RunConfig(
        seed=fault_seed,
        size=3,
        netns=False,
        duration_s=4,
        nemeses=["power_cut_all"],
        disks="lazyfs",
        fsync="lie",
        warmup_s=2.0,
        post_heal_s=1.0,
        settle_timeout_s=15.0,
    )
    result = runner.run(config, tmp_path)
    report = result.report(test=request.node.name)
    print(report)
    kinds = {v.kind for v in result.violations}
    assert result.stats["ok"] > 0, report
    assert "lost" in kinds, f"lying fsync went unnoticed:\n{report}"
