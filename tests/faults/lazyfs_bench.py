"""How much lazyfs slows a node: a 3-server cluster on plain directories,
then on lazyfs mounts, each loaded by concurrent clients writing to the
leader for a while; prints commands/s and latency for both.

    .venv/bin/python -m tests.faults.lazyfs_bench [--seconds 10] [--clients 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.cluster.harness import LocalCluster

from . import disks
from .workload import new_session


def measure(base: Path, lazy: bool, seconds: float, clients: int) -> dict:
    with contextlib.ExitStack() as stack:
        cluster = LocalCluster(3, base_dir=base)
        cluster.http.trust_env = False
        mounted = []
        if lazy:
            for n in cluster.nodes:
                disk = disks.Disk(base / f"disk-{n.port}", n.data_dir)
                stack.callback(disk.close)
                disk.mount()
                mounted.append(disk)
        stack.callback(cluster.close)
        cluster.start()
        leader = cluster.leader(timeout=20)
        url = leader.base_url + "/api/commands"
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        end = time.monotonic() + seconds

        def client(number: int):
            session = new_session()
            seq = 0
            try:
                while time.monotonic() < end:
                    seq += 1
                    body = {"command": f"b{number}:{seq}", "client_id": f"b{number}"}
                    body["seq"] = seq
                    started = time.monotonic()
                    try:
                        ok = session.post(url, json=body, timeout=(1, 10)).ok
                    except Exception:  # noqa: BLE001 - counted
                        ok = False
                    with lock:
                        if ok:
                            latencies.append(time.monotonic() - started)
                        else:
                            errors[0] += 1
            finally:
                session.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30)
        latencies.sort()
        stats = [d.command("stats") for d in mounted]
        return {
            "disks": "lazyfs" if lazy else "plain",
            "commands_per_s": round(len(latencies) / seconds, 1),
            "errors": errors[0],
            "p50_ms": (
                round(1000 * statistics.median(latencies), 1) if latencies else None
            ),
            "p99_ms": (
                round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)
                if latencies
                else None
            ),
            "fsyncs_per_node": [s["fsyncs"] for s in stats],
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    reason = disks.unavailable_reason()
    if reason:
        print(f"lazyfs unavailable: {reason}")
        return 1
    results = []
    with tempfile.TemporaryDirectory(prefix="lazyfs-bench-") as tmp:
        for lazy in (False, True):
            result = measure(
                Path(tmp) / ("lazy" if lazy else "plain"),
                lazy,
                args.seconds,
                args.clients,
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    ratio = results[1]["commands_per_s"] / max(results[0]["commands_per_s"], 0.1)
    print(f"lazyfs/plain throughput: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
