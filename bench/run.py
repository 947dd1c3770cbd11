#!/usr/bin/env python
"""Benchmark a local 3-node cluster: throughput, latency, failover, memory.

Starts its own cluster on free loopback ports in a temporary directory (make
bench). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster.harness import LocalCluster, group_members  # noqa: E402

LOAD = Path(__file__).resolve().parent / "load.py"
CLIENT_LEVELS = (1, 16, 64)
TARGETS = {
    "commands_per_s_64": 500.0,
    "p50_ms_1": 5.0,
    "failover_median_s": 1.5,
    "rss_mb_per_node": 200.0,
}


# -- machine ------------------------------------------------------------------


def machine() -> dict:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


# -- load generation ----------------------------------------------------------


def spread(clients: int, threads_per_proc: int) -> list[int]:
    """Split ``clients`` threads over as few processes as allow at most
    ``threads_per_proc`` each, as evenly as possible."""
    procs = max(1, math.ceil(clients / threads_per_proc))
    base, extra = divmod(clients, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


def run_clients(
    url: str,
    clients: int,
    threads_per_proc: int,
    prefix: str,
    seconds: float | None = None,
    total: int | None = None,
) -> tuple[list, dict, float]:
    """Closed-loop writers in client processes; all start at one instant.

    Runs for ``seconds`` or until ``total`` commands succeeded. Returns
    (samples as (start, latency_s), error counts, start time).
    """
    # Interpreter and requests start-up of every client process fits in
    # this lead time, so all threads start writing together.
    start_at = time.time() + 1.0 + 0.15 * math.ceil(clients / threads_per_proc)
    per_proc = spread(clients, threads_per_proc)
    procs = []
    for i, threads in enumerate(per_proc):
        spec = {
            "url": url,
            "threads": threads,
            "start_at": start_at,
            "prefix": f"{prefix}-{i}",
        }
        if seconds is not None:
            spec["stop_at"] = start_at + seconds
        if total is not None:
            spec["per_thread"] = math.ceil(total / clients)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(LOAD), json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    samples, errors = [], {}
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"client process exited with {proc.returncode}")
        result = json.loads(out)
        samples.extend(result["samples"])
        for code, count in result["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return samples, errors, start_at


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure_level(cluster, clients, args) -> dict:
    leader = cluster.leader(timeout=15)
    samples, errors, start_at = run_clients(
        leader.base_url,
        clients,
        args.threads_per_proc,
        prefix=f"c{clients}",
        seconds=args.warmup + args.duration,
    )
    # Only the steady window after the warm-up counts.
    window_start = start_at + args.warmup
    window_end = window_start + args.duration
    done = [(s, lat) for s, lat in samples if window_start <= s + lat <= window_end]
    latencies = sorted(
        lat * 1000 for s, lat in samples if window_start <= s < window_end
    )
    return {
        "clients": clients,
        "client_procs": len(spread(clients, args.threads_per_proc)),
        "commands_per_s": len(done) / args.duration,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "committed": len(done),
        "errors": errors,
    }


# -- failover -------------------------------------------------------------------


class Writer(threading.Thread):
    """Writes back to back, moving to the next server on any failure, as a
    client that knows the cluster's addresses would."""

    def __init__(self, urls: list[str], first: int):
        super().__init__(daemon=True)
        self.urls = urls
        self.target = first
        self.successes: list[tuple[float, float]] = []  # (sent, answered)
        self.halt = threading.Event()

    def run(self):
        session = requests.Session()
        n = 0
        while not self.halt.is_set():
            n += 1
            url = self.urls[self.target] + "/api/commands"
            sent = time.monotonic()
            try:
                r = session.post(
                    url, json={"command": f"failover-{n}"}, timeout=(0.25, 2.0)
                )
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.successes.append((sent, time.monotonic()))
            else:
                self.target = (self.target + 1) % len(self.urls)
                time.sleep(0.01)

    def first_success_after(self, t: float):
        return next((done for sent, done in list(self.successes) if sent >= t), None)


def failover_round(cluster) -> dict:
    leader = cluster.leader(timeout=15)
    urls = [n.base_url for n in cluster.nodes]
    writer = Writer(urls, cluster.nodes.index(leader))
    writer.start()
    try:
        cluster.wait_until(lambda: len(writer.successes) >= 20, 15, "steady writes")
        killed_at = time.monotonic()
        cluster.kill(leader)
        new = cluster.leader(timeout=15)
        elected_s = time.monotonic() - killed_at
        done = cluster.wait_until(
            lambda: writer.first_success_after(killed_at), 30, "a write after the kill"
        )
    finally:
        writer.halt.set()
        writer.join()
    cluster.restart(leader)
    target = cluster.status(new)["commit_index"]
    cluster.wait_applied(target, [leader], timeout=60)
    return {
        "killed": leader.address,
        "new_leader": new.address,
        "write_resumed_s": done - killed_at,
        "leader_agreed_s": elected_s,
    }


# -- memory ---------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def node_memory(cluster) -> list[dict]:
    rows = []
    for node in cluster.nodes:
        master = node.pid
        workers = [p for p in group_members(master) if p != master]
        rows.append(
            {
                "node": node.address,
                "restarts": node.incarnation,
                "master_mb": rss_mb(master),
                "worker_mb": sum(rss_mb(p) for p in workers),
                "workers": len(workers),
            }
        )
        rows[-1]["total_mb"] = rows[-1]["master_mb"] + rows[-1]["worker_mb"]
    return rows


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_memory(cluster, args) -> dict:
    leader = cluster.leader(timeout=15)
    before = node_memory(cluster)
    have = cluster.status(leader)["last_log_index"]
    missing = max(0, args.entries - have)
    started = time.monotonic()
    errors = {}
    if missing:
        print(
            f"  loading {missing} entries with {args.load_clients} clients ...",
            flush=True,
        )
        _, errors, _ = run_clients(
            leader.base_url,
            args.load_clients,
            args.threads_per_proc,
            "mem",
            total=missing,
        )
    load_s = time.monotonic() - started
    leader = cluster.leader(timeout=15)
    last = cluster.status(leader)["commit_index"]
    cluster.wait_applied(last, cluster.nodes, timeout=300)
    after = node_memory(cluster)
    disk_mb = {n.address: disk_bytes(n.data_dir) / 2**20 for n in cluster.nodes}
    # A node that starts on the full log: what start-up loads stays resident.
    follower = cluster.others(leader)[0]
    started = time.monotonic()
    cluster.restart(follower)
    cluster.wait_applied(last, [follower], timeout=300)
    restart_s = time.monotonic() - started
    restarted = next(r for r in node_memory(cluster) if r["node"] == follower.address)
    return {
        "entries": cluster.status(leader)["last_log_index"],
        "loaded": missing,
        "load_s": load_s,
        "load_errors": errors,
        "disk_mb": disk_mb,
        "before": before,
        "after": after,
        "restarted": {**restarted, "catch_up_s": restart_s},
    }


# -- report -------------------------------------------------------------------------


def report(results: dict) -> str:
    out = []
    m0, m1 = results["machine_start"], results["machine_end"]
    out.append(
        f"raftsite bench: nproc {m0['nproc']}, load average "
        f"{fmt_load(m0['loadavg'])} at start, {fmt_load(m1['loadavg'])} at end"
    )
    out.append("")
    out.append("throughput: closed-loop POST /api/commands to the leader")
    out.append(
        f"{'clients':>8} {'procs':>6} {'cmds/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors"
    )
    for lv in results["throughput"]:
        out.append(
            f"{lv['clients']:>8} {lv['client_procs']:>6} {lv['commands_per_s']:>9.1f}"
            f" {lv['p50_ms']:>8.2f} {lv['p99_ms']:>8.2f}  {lv['errors'] or '-'}"
        )
    fo = results.get("failover")
    if fo:
        out.append("")
        out.append(
            "failover: kill -9 the leader during writes; kill -> next successful write"
        )
        for r in fo["rounds"]:
            out.append(
                f"  {r['killed']} killed: write after {r['write_resumed_s']:.3f} s"
                f" (leader agreed after {r['leader_agreed_s']:.3f} s, {r['new_leader']})"
            )
        out.append(f"  median {fo['median_s']:.3f} s")
    mem = results.get("memory")
    if mem:
        out.append("")
        out.append(
            f"memory: RSS after {mem['entries']} log entries "
            f"(loaded {mem['loaded']} in {mem['load_s']:.0f} s, errors {mem['load_errors'] or '-'})"
        )
        out.append(
            f"{'node':>20} {'restarts':>8} {'master MB':>10} {'worker MB':>10} {'total MB':>9} {'disk MB':>8}  (before load)"
        )
        for before, row in zip(mem["before"], mem["after"], strict=False):
            out.append(
                f"{row['node']:>20} {row['restarts']:>8} {row['master_mb']:>10.1f}"
                f" {row['worker_mb']:>10.1f} {row['total_mb']:>9.1f}"
                f" {mem['disk_mb'][row['node']]:>8.1f}  ({before['total_mb']:.1f})"
            )
        r = mem["restarted"]
        out.append(
            f"  {r['node']} restarted on the full log: serving and applied in"
            f" {r['catch_up_s']:.1f} s, RSS {r['total_mb']:.1f} MB"
            f" (master {r['master_mb']:.1f}, worker {r['worker_mb']:.1f})"
        )
    out.append("")
    out.append("targets (2-core machine)")
    for name, (value, target, ok) in results["targets"].items():
        shown = "n/a" if value is None else f"{value:.2f}"
        verdict = "skipped" if value is None else ("PASS" if ok else "FAIL")
        out.append(f"  {name:<40} {shown:>9}  target {target:<8} {verdict}")
    return "\n".join(out)


def check_targets(results: dict) -> dict:
    by_clients = {lv["clients"]: lv for lv in results["throughput"]}
    checks = {}

    def check(name, value, target, ok):
        checks[name] = (value, target, value is not None and ok(value))

    t64 = by_clients.get(64, {}).get("commands_per_s")
    check("commands/s at 64 clients", t64, f">= {TARGETS['commands_per_s_64']:.0f}",
          lambda v: v >= TARGETS["commands_per_s_64"])  # fmt: skip
    p50 = by_clients.get(1, {}).get("p50_ms")
    check("p50 ms at 1 client", p50, f"< {TARGETS['p50_ms_1']:.0f}",
          lambda v: v < TARGETS["p50_ms_1"])  # fmt: skip
    fo = results.get("failover", {}).get("median_s")
    check("failover median s", fo, f"< {TARGETS['failover_median_s']}",
          lambda v: v < TARGETS["failover_median_s"])  # fmt: skip
    mem = results.get("memory")
    worst = None
    if mem:
        worst = max(r["total_mb"] for r in [*mem["after"], mem["restarted"]])
    label = f"max RSS MB per node ({mem['entries'] if mem else '-'} entries)"
    check(label, worst, f"< {TARGETS['rss_mb_per_node']:.0f}",
          lambda v: v < TARGETS["rss_mb_per_node"])  # fmt: skip
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per client level"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds discarded per level"
    )
    parser.add_argument("--rounds", type=int, default=5, help="failover rounds")
    parser.add_argument(
        "--entries", type=int, default=100_000, help="log size for memory"
    )
    parser.add_argument("--load-clients", type=int, default=64)
    parser.add_argument("--threads-per-proc", type=int, default=8,
                        help="client threads per client process")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="3 s levels, 3 failover rounds, 10,000 entries")  # fmt: skip
    parser.add_argument("--skip", action="append", default=[],
                        choices=["throughput", "failover", "memory"])  # fmt: skip
    parser.add_argument("--output", type=Path, help="JSON results (default artifacts/)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster's directory"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 0.5, 3
        args.entries = min(args.entries, 10_000)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or ROOT / "artifacts" / f"bench-{stamp}.json"

    results = {
        "machine_start": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    print(f"nproc {results['machine_start']['nproc']}, load average "
          f"{fmt_load(results['machine_start']['loadavg'])}", flush=True)  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="raftsite-bench-"))
    cluster = LocalCluster(3, base_dir=base)
    try:
        cluster.start()
        cluster.leader(timeout=30)
        results["throughput"] = []
        if "throughput" not in args.skip:
            for clients in CLIENT_LEVELS:
                print(f"throughput: {clients} clients ...", flush=True)
                results["throughput"].append(measure_level(cluster, clients, args))
        if "failover" not in args.skip:
            rounds = []
            for i in range(args.rounds):
                print(f"failover: round {i + 1}/{args.rounds} ...", flush=True)
                rounds.append(failover_round(cluster))
            results["failover"] = {
                "rounds": rounds,
                "median_s": statistics.median(r["write_resumed_s"] for r in rounds),
            }
        if "memory" not in args.skip:
            print(f"memory: {args.entries} entries ...", flush=True)
            results["memory"] = measure_memory(cluster, args)
    except BaseException:
        print(cluster.describe(tail=30), file=sys.stderr)
        raise
    finally:
        cluster.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"cluster directory kept: {base}")
    results["machine_end"] = machine()
    results["targets"] = check_targets(results)
    print()
    print(report(results))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
