#!/usr/bin/env python
"""Benchmark local 3-node clusters: throughput, latency, failover, memory, the
long run (issue 9) and write throughput with snapshots on and off.

Starts its own clusters on free loopback ports in a temporary directory (make
bench). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import kvbench, longrun, snapwrite  # noqa: E402
from bench.closedloop import measure_level  # noqa: E402
from bench.memory import measure_memory  # noqa: E402
from bench.nodestats import fmt_load, machine  # noqa: E402
from tests.cluster.harness import LocalCluster  # noqa: E402

CLIENT_LEVELS = (1, 16, 64)
# The batch form of POST /api/commands (issue 11): clients, commands a batch.
BATCH_LEVELS = (1, 16)
BATCH_SIZE = 100
SECTIONS = ("throughput", "kv", "failover", "memory", "longrun", "snapwrite")
TARGETS = {
    "commands_per_s_64": 500.0,
    "p50_ms_1": 5.0,
    "failover_median_s": 1.5,
    "rss_mb_per_node": 200.0,
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


# -- report -------------------------------------------------------------------------


def report(results: dict) -> str:
    out = []
    m0, m1 = results["machine_start"], results["machine_end"]
    out.append(
        f"raftsite bench: nproc {m0['nproc']}, load average "
        f"{fmt_load(m0['loadavg'])} at start, {fmt_load(m1['loadavg'])} at end"
    )
    if results["throughput"]:
        out.append("")
        out.append("throughput: closed-loop POST /api/commands to the leader")
        out.append(
            f"{'clients':>8} {'procs':>6} {'cmds/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
            "  errors"
        )
    for lv in results["throughput"]:
        out.append(
            f"{lv['clients']:>8} {lv['client_procs']:>6} {lv['commands_per_s']:>9.1f}"
            f" {lv['p50_ms']:>8.2f} {lv['p99_ms']:>8.2f}  {lv['errors'] or '-'}"
        )
    if results.get("batches"):
        out.append("")
        out.append(
            f"batches: closed-loop POST /api/commands of {BATCH_SIZE} commands each"
        )
        out.append(
            f"{'clients':>8} {'batch/s':>9} {'cmds/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
            "  errors"
        )
    for lv in results.get("batches", ()):
        out.append(
            f"{lv['clients']:>8} {lv['requests_per_s']:>9.1f} {lv['commands_per_s']:>9.1f}"
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
            f"  {r['node']} restarted on the full log: serving its commit index"
            f" {r['restart_s']:.2f} s after its start, applied all in"
            f" {r['catch_up_s']:.1f} s, RSS {r['total_mb']:.1f} MB"
            f" (master {r['master_mb']:.1f}, worker {r['worker_mb']:.1f})"
        )
    if results.get("kv"):
        out.extend(kvbench.report(results["kv"]))
    if results.get("longrun"):
        out.extend(longrun.report(results["longrun"]))
    if results.get("snapwrite"):
        out.extend(snapwrite.report(results["snapwrite"]))
    out.append("")
    out.append("targets (2-core machine)")
    for name, (value, target, ok) in results["targets"].items():
        if value is None:
            shown = "n/a"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = f"{value:.2f}"
        verdict = "skipped" if value is None else ("PASS" if ok else "FAIL")
        out.append(f"  {name:<44} {shown:>9}  target {target:<8} {verdict}")
    return "\n".join(out)


def check_targets(results: dict) -> dict:
    by_clients = {lv["clients"]: lv for lv in results.get("throughput", [])}
    checks = {}

    def check(name, value, target, ok):
        checks[name] = (value, target, value is not None and ok(value))

    sections = results["sections"]
    if "throughput" in sections:
        t64 = by_clients.get(64, {}).get("commands_per_s")
        check("commands/s at 64 clients", t64,
              f">= {TARGETS['commands_per_s_64']:.0f}",
              lambda v: v >= TARGETS["commands_per_s_64"])  # fmt: skip
        p50 = by_clients.get(1, {}).get("p50_ms")
        check("p50 ms at 1 client", p50, f"< {TARGETS['p50_ms_1']:.0f}",
              lambda v: v < TARGETS["p50_ms_1"])  # fmt: skip
    if "failover" in sections:
        fo = results.get("failover", {}).get("median_s")
        check("failover median s", fo, f"< {TARGETS['failover_median_s']}",
              lambda v: v < TARGETS["failover_median_s"])  # fmt: skip
    mem = results.get("memory")
    if "memory" in sections:
        worst = None
        if mem:
            worst = max(r["total_mb"] for r in [*mem["after"], mem["restarted"]])
        label = f"max RSS MB per node ({mem['entries'] if mem else '-'} entries)"
        check(label, worst, f"< {TARGETS['rss_mb_per_node']:.0f}",
              lambda v: v < TARGETS["rss_mb_per_node"])  # fmt: skip
    if results.get("kv"):
        kvbench.targets(results["kv"], check)
    if results.get("longrun"):
        longrun.targets(results["longrun"], check)
    if results.get("snapwrite"):
        snapwrite.targets(results["snapwrite"], check)
    return checks


def sizes(text: str) -> list[int]:
    """--sizes: comma-separated counts, underscores allowed (10_000)."""
    return sorted({int(part.replace("_", "")) for part in text.split(",") if part})


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per client level"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds discarded per level"
    )
    parser.add_argument("--rounds", type=int, default=5, help="failover rounds")
    parser.add_argument("--entries", type=int, default=100_000,
                        help="log size for memory: loaded through the API")  # fmt: skip
    parser.add_argument("--load-clients", type=int, default=64)
    parser.add_argument("--client", choices=("requests", "httpclient"),
                        default="requests",
                        help="the load's HTTP client: requests, or the lighter "
                        "http.client (as ../shared/bench/compare.sh runs both)")  # fmt: skip
    parser.add_argument("--threads-per-proc", type=int, default=8,
                        help="client threads per client process")  # fmt: skip
    parser.add_argument("--kv-client", choices=("requests", "httpclient"),
                        default="httpclient",
                        help="the key-value section's HTTP client: http.client by "
                        "default, since requests' own CPU (about 0.8 ms a request, "
                        "on the nodes' 2 cores) bounds reads and writes alike and "
                        "hides the ratio issue 12 asks for")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="3 s levels, 3 failover rounds, 10,000 entries,"
                        " long run to 50,000, 2 snapshot rounds of 1,000-entry snapshots")  # fmt: skip
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    parser.add_argument("--only", action="append", default=[], choices=SECTIONS,
                        help="run only these sections (repeatable)")  # fmt: skip
    long = parser.add_argument_group("long run (issue 9)")
    long.add_argument("--sizes", type=sizes, default=None,
                      help="applied commands to measure at; those up to --entries"
                      " through the API, the rest written by bench/fill.py"
                      " (default 10000,100000,1000000)")  # fmt: skip
    long.add_argument("--fill-compact", choices=["auto", "yes", "no"],
                      default="auto", help="fill.py takes snapshots and compacts"
                      " (auto: if the nodes took any during the API load)")  # fmt: skip
    long.add_argument("--fill-timeout", type=float, default=600.0)
    long.add_argument("--settle-entries", type=int, default=5000,
                      help="written through the API after a filled restart")  # fmt: skip
    long.add_argument("--restart-timeout", type=float, default=300.0)
    long.add_argument("--add-timeout", type=float, default=90.0,
                      help="addserver's --timeout")  # fmt: skip
    snap = parser.add_argument_group("snapshots on/off (issue 9)")
    snap.add_argument("--snap-entries", type=int, default=2000,
                      help="RAFT_SNAPSHOT_ENTRIES of the cluster with snapshots")  # fmt: skip
    snap.add_argument("--snap-trailing", type=int, default=None,
                      help="its RAFT_SNAPSHOT_TRAILING (default: the nodes')")  # fmt: skip
    snap.add_argument("--snap-warmup", type=int, default=7000,
                      help="entries written to each cluster before the rounds")  # fmt: skip
    snap.add_argument("--snap-rounds", type=int, default=4,
                      help="rounds; each measures both clusters")  # fmt: skip
    parser.add_argument("--output", type=Path, help="JSON results (default artifacts/)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the clusters' directory"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 0.5, 3
        args.entries = min(args.entries, 10_000)
        args.snap_rounds = min(args.snap_rounds, 2)
        args.snap_entries = min(args.snap_entries, 1000)
        args.snap_warmup = min(args.snap_warmup, 2000)
        args.settle_entries = min(args.settle_entries, 2000)
        if args.sizes is None:
            args.sizes = [10_000, 50_000]
    if args.sizes is None:
        args.sizes = [10_000, 100_000, 1_000_000]
    args.sections = [
        s for s in SECTIONS if (s in args.only if args.only else s not in args.skip)
    ]
    return args


def run_main_cluster(args, base: Path, results: dict) -> None:
    """Throughput, failover and (when the long run does not measure it on
    its own cluster) memory, on one cluster."""
    cluster = LocalCluster(3, base_dir=base / "main")
    try:
        cluster.start()
        cluster.leader(timeout=30)
        # Three fresh nodes started at once until they agree on a leader
        # (process start, imports, migrations, then the election).
        results["first_leader_s"] = time.monotonic() - cluster.started_at
        print(f"first leader agreed {results['first_leader_s']:.2f} s after start")
        if "throughput" in args.sections:
            for clients in CLIENT_LEVELS:
                print(f"throughput: {clients} clients ...", flush=True)
                results["throughput"].append(measure_level(cluster, clients, args))
            for clients in BATCH_LEVELS:
                print(f"batches of {BATCH_SIZE}: {clients} clients ...", flush=True)
                results["batches"].append(
                    measure_level(
                        cluster, clients, args, mode="batch", batch=BATCH_SIZE
                    )
                )
        if "kv" in args.sections:
            results["kv"] = kvbench.run_kv(cluster, args)
        if "failover" in args.sections:
            rounds = []
            for i in range(args.rounds):
                print(f"failover: round {i + 1}/{args.rounds} ...", flush=True)
                rounds.append(failover_round(cluster))
            results["failover"] = {
                "rounds": rounds,
                "median_s": statistics.median(r["write_resumed_s"] for r in rounds),
            }
        if "memory" in args.sections and "longrun" not in args.sections:
            print(f"memory: {args.entries} entries ...", flush=True)
            results["memory"] = measure_memory(cluster, args)
    except BaseException:
        print(cluster.describe(tail=30), file=sys.stderr)
        raise
    finally:
        cluster.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or ROOT / "artifacts" / f"bench-{stamp}.json"

    results = {
        "machine_start": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "sections": args.sections,
        "throughput": [],
        "batches": [],
    }
    print(f"nproc {results['machine_start']['nproc']}, load average "
          f"{fmt_load(results['machine_start']['loadavg'])}", flush=True)  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="raftsite-bench-"))
    try:
        if {"throughput", "kv", "failover"} & set(args.sections) or (
            "memory" in args.sections and "longrun" not in args.sections
        ):
            run_main_cluster(args, base, results)
        if "longrun" in args.sections:
            memory, results["longrun"] = longrun.run_longrun(args, base)
            if "memory" in args.sections:
                results["memory"] = memory
            results["machine_after_longrun"] = machine()
        if "snapwrite" in args.sections:
            results["snapwrite"] = snapwrite.run_snapwrite(args, base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"clusters' directory kept: {base}")
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
