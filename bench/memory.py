"""The memory section: fill the log through the API with closed-loop clients,
read every node's RSS and disk at checkpoints on the way, then restart a
follower on the full log and time it. The long run (bench/longrun.py) uses
it for the sizes it loads through the API."""

from __future__ import annotations

import os
import threading
import time

import requests

from bench.closedloop import run_clients
from bench.nodestats import disk_usage, node_memory, node_rss
from tests.cluster.harness import WaitTimeout

# How long a restarted node may take to serve its old commit index.
RESTART_TIMEOUT_S = 300.0


def checkpoint(cluster, size: int, via: str) -> dict:
    """Wait until every node applied the leader's commit index, then read
    each node's RSS and data directory."""
    leader = cluster.leader(timeout=30)
    last = cluster.status(leader)["commit_index"]
    cluster.wait_applied(last, cluster.nodes, timeout=300)
    nodes = [
        {**row, "disk": disk_usage(cluster.node(row["node"]).data_dir)}
        for row in node_memory(cluster)
    ]
    return {
        "size": size,
        "applied": last,
        "via": via,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "nodes": nodes,
    }


def start_timed(cluster, targets: dict, timeout: float = RESTART_TIMEOUT_S) -> dict:
    """Start stopped nodes (``targets``: node -> the commit index it had) at
    once, and time each from its process start to its first /api/status 200
    (``serving_s``) and to the first one showing that commit index
    (``restart_s``). One polling thread per node, every 20 ms."""
    results = {}
    started = {}
    for node in targets:
        started[node] = time.monotonic()
        cluster.start_node(node)

    def poll(node):
        session = requests.Session()
        row = {"commit_index": targets[node], "serving_s": None, "restart_s": None}
        results[node.address] = row
        deadline = started[node] + timeout
        while time.monotonic() < deadline and node.running():
            try:
                r = session.get(node.base_url + "/api/status", timeout=(0.2, 2.0))
            except requests.RequestException:
                r = None
            now = time.monotonic()
            if r is not None and r.status_code == 200:
                if row["serving_s"] is None:
                    row["serving_s"] = now - started[node]
                if r.json()["commit_index"] >= targets[node]:
                    row["restart_s"] = now - started[node]
                    break
            time.sleep(0.02)
        session.close()

    threads = [threading.Thread(target=poll, args=(n,)) for n in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    late = [a for a, row in results.items() if row["restart_s"] is None]
    if late:
        raise WaitTimeout(
            f"{late} did not serve their commit index within {timeout:.0f} s"
            f"\n{cluster.describe()}"
        )
    return results


def restart_follower(cluster) -> dict:
    """Stop one follower (SIGTERM), start it again and time it (start_timed);
    then wait until it applied the leader's commit index."""
    leader = cluster.leader(timeout=30)
    follower = cluster.others(leader)[0]
    commit = cluster.status(follower)["commit_index"]
    cluster.stop(follower)
    started = time.monotonic()
    timed = start_timed(cluster, {follower: commit})[follower.address]
    leader = cluster.leader(timeout=30)
    cluster.wait_applied(cluster.status(leader)["commit_index"], [follower], 300)
    return {
        **node_rss(follower),
        **timed,
        "catch_up_s": time.monotonic() - started,
    }


def measure_memory(cluster, args, checkpoints=()) -> dict:
    """Load the log through the API to ``args.entries``, stopping at every
    size of ``checkpoints`` below it to read RSS and disk."""
    leader = cluster.leader(timeout=15)
    before = node_memory(cluster)
    have = cluster.status(leader)["last_log_index"]
    targets = sorted({s for s in checkpoints if have < s < args.entries})
    targets.append(args.entries)
    rows, errors, loaded, load_s = [], {}, 0, 0.0
    for target in targets:
        leader = cluster.leader(timeout=15)
        missing = max(0, target - cluster.status(leader)["last_log_index"])
        if missing:
            print(
                f"  loading {missing} entries (to {target}) with"
                f" {args.load_clients} clients ...",
                flush=True,
            )
            started = time.monotonic()
            _, errs, _ = run_clients(
                leader.base_url,
                args.load_clients,
                args.threads_per_proc,
                f"mem{target}",
                total=missing,
            )
            load_s += time.monotonic() - started
            loaded += missing
            for code, count in errs.items():
                errors[code] = errors.get(code, 0) + count
        rows.append(checkpoint(cluster, target, "api"))
    final = rows[-1]
    # A node that starts on the full log: what start-up loads stays resident.
    restarted = restart_follower(cluster)
    return {
        "entries": final["applied"],
        "loaded": loaded,
        "load_s": load_s,
        "load_errors": errors,
        "passed": [s for s in checkpoints if s <= have],  # reached before
        "checkpoints": rows,
        "disk_mb": {n["node"]: n["disk"]["total_mb"] for n in final["nodes"]},
        "before": before,
        "after": [{k: v for k, v in n.items() if k != "disk"} for n in final["nodes"]],
        "restarted": restarted,
    }
