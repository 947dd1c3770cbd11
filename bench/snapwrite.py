"""Write throughput with snapshots being taken against the same build with
snapshots off (issue 9): two 3-node clusters, one with a small
RAFT_SNAPSHOT_ENTRIES and one with it set out of reach, measured in
alternate rounds of 64 closed-loop clients. See bench/README.md."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from bench.closedloop import measure_level, run_clients
from bench.nodestats import disk_usage
from tests.cluster.harness import LocalCluster, free_ports

CLIENTS = 64
# Out of reach of any run: the policy never asks for a snapshot.
NEVER = 10**12


def run_snapwrite(args, base: Path) -> dict:
    ports = free_ports(6)
    on_env = {"RAFT_SNAPSHOT_ENTRIES": str(args.snap_entries)}
    if args.snap_trailing is not None:
        on_env["RAFT_SNAPSHOT_TRAILING"] = str(args.snap_trailing)
    clusters = {
        "on": LocalCluster(3, base_dir=base / "snap-on", env=on_env, ports=ports[:3]),
        "off": LocalCluster(
            3,
            base_dir=base / "snap-off",
            env={"RAFT_SNAPSHOT_ENTRIES": str(NEVER)},
            ports=ports[3:],
        ),
    }
    rounds = []
    try:
        for cluster in clusters.values():
            cluster.start()
        for label, cluster in clusters.items():
            leader = cluster.leader(timeout=30)
            if args.snap_warmup:
                # Past the first snapshots (and, at the default trailing
                # window, the first compaction), as a node long in service.
                print(f"snapwrite: warm-up, snapshots {label} ...", flush=True)
                run_clients(
                    leader.base_url,
                    CLIENTS,
                    args.threads_per_proc,
                    f"warm-{label}",
                    total=args.snap_warmup,
                )
        for i in range(args.snap_rounds):
            # on, off, off, on, ...: a drift in the machine's load over the
            # run weighs on both alike.
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for label in order:
                cluster = clusters[label]
                print(f"snapwrite: round {i + 1}, snapshots {label} ...", flush=True)
                leader = cluster.leader(timeout=15)
                before = disk_usage(leader.data_dir)
                taken_before = snapshots_taken(cluster)
                level = measure_level(cluster, CLIENTS, args)
                after = disk_usage(leader.data_dir)
                taken = snapshots_taken(cluster) - taken_before
                rounds.append(
                    {
                        "round": i + 1,
                        "snapshots": label,
                        "leader": leader.address,
                        "snapshot_index_before": before["snapshot_index"],
                        "snapshot_index_after": after["snapshot_index"],
                        "log_entries_after": after["log_entries"],
                        "snapshots_taken": taken,
                        **level,
                    }
                )
    except BaseException:
        for cluster in clusters.values():
            print(cluster.describe(tail=30), file=sys.stderr)
        raise
    finally:
        for cluster in clusters.values():
            cluster.close()
    rate = {
        label: [r["commands_per_s"] for r in rounds if r["snapshots"] == label]
        for label in clusters
    }
    mean = {label: statistics.mean(values) for label, values in rate.items()}
    # Each round measures both back to back: their ratio is the least
    # disturbed by other work on the machine.
    paired = [on / off for on, off in zip(rate["on"], rate["off"], strict=True) if off]
    return {
        "clients": CLIENTS,
        "snapshot_entries_on": args.snap_entries,
        "snapshot_trailing_on": args.snap_trailing,
        "warmup_entries": args.snap_warmup,
        "rounds": rounds,
        "mean_on": mean["on"],
        "mean_off": mean["off"],
        "ratio": mean["on"] / mean["off"] if mean["off"] else None,
        "round_ratios": paired,
        "median_round_ratio": statistics.median(paired) if paired else None,
    }


def snapshots_taken(cluster) -> int:
    """How many "Took snapshot" lines the three nodes have printed."""
    return sum(
        1
        for node in cluster.nodes
        for event in cluster.events(node, all_incarnations=True)
        if event.startswith("Took snapshot")
    )


def report(sw: dict) -> list[str]:
    out = [
        "",
        f"snapshots on/off: {sw['clients']} clients, alternate rounds;"
        f" on: RAFT_SNAPSHOT_ENTRIES {sw['snapshot_entries_on']},"
        f" off: {NEVER}; {sw['warmup_entries']} entries written to each first",
        f"{'round':>6} {'snaps':>6} {'cmds/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f"  {'snapshot index':>16} {'taken':>6} {'log':>7}  errors",
    ]
    for r in sw["rounds"]:
        moved = f"{r['snapshot_index_before']}->{r['snapshot_index_after']}"
        out.append(
            f"{r['round']:>6} {r['snapshots']:>6} {r['commands_per_s']:>9.1f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {moved:>16}"
            f" {r['snapshots_taken']:>6}"
            f" {r['log_entries_after'] or 0:>7}  {r['errors'] or '-'}"
        )
    ratio = "-" if sw["ratio"] is None else f"{sw['ratio']:.3f}"
    out.append(
        f"  mean on {sw['mean_on']:.1f}, off {sw['mean_off']:.1f} cmds/s;"
        f" on/off {ratio}; per round "
        + " ".join(f"{r:.3f}" for r in sw["round_ratios"])
        + f" (median {sw['median_round_ratio']:.3f})"
    )
    return out


def targets(sw: dict, check) -> None:
    check("snapshots on/off cmds/s at 64 clients", sw["ratio"], ">= 0.90",
          lambda v: v >= 0.9)  # fmt: skip
