"""One client's latency and the nodes' CPU per command for two checkouts of
the project, side by side: two 3-node clusters run at once, and runs of
sequential commands to each leader alternate between them (A then B, B then
A, ...). On a shared two-core machine a single run's p50 moves by a third
with the machine's state; within a round both clusters see about the same
state, so the round's ratio B / A keeps the difference of the code. Prints
each run, then the medians of the paired ratios.

    git worktree add /tmp/old <commit>     # the code to compare against
    .venv/bin/python bench/ab.py /tmp/old . [--rounds 12] [--commands 1500]

With --clients N (N > 1) each run is N clients at once for --seconds
(http.client, or requests with --client requests), and it compares the
commands per second and the nodes' CPU per command instead of the p50.

Both clusters run this virtualenv's Python (the checkouts' dependencies
must match). A checkout may take settings: /tmp/old@RAFT_TICK_MS=25.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.harness import LocalCluster, group_members  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
WARMUP = 20


def cluster_cpu_s(cluster) -> float:
    """CPU seconds used so far by every process of the cluster's nodes
    (gunicorn's master and worker, all threads)."""
    total = 0
    for node in cluster.nodes:
        for pid in group_members(os.getpgid(node.pid)):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # gone since it was listed
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS_PER_S


HEADERS = {"Content-Type": "application/json"}


def sequential(port: int, commands: int, tag: str) -> list[float]:
    """Latencies (s) of ``commands`` sequential POST /api/commands on one
    kept-alive http.client connection, after a warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    try:
        for i in range(WARMUP + commands):
            body = json.dumps({"command": f"{tag}-{i}"})
            start = time.perf_counter()
            conn.request(
                "POST", "/api/commands", body, {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"POST /api/commands: HTTP {response.status}")
            if i >= WARMUP:
                latencies.append(time.perf_counter() - start)
    finally:
        conn.close()
    return latencies


def one_run(cluster, commands: int, tag: str, via_follower: bool = False) -> dict:
    target = cluster.leader(timeout=20)
    if via_follower:
        target = cluster.others(target)[0]
    cpu_before = cluster_cpu_s(cluster)
    latencies = sequential(target.port, commands, tag)
    cpu = cluster_cpu_s(cluster) - cpu_before
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "cpu_ms_per_command": cpu * 1000 / (commands + WARMUP),
    }


def _poster(port: int, client: str):
    """A function that posts one command and checks the answer."""
    if client == "requests":
        import requests

        session = requests.Session()
        url = f"http://127.0.0.1:{port}/api/commands"

        def post(body: str) -> None:
            answer = session.post(url, data=body, timeout=10, headers=HEADERS)
            if answer.status_code != 200:
                raise RuntimeError(f"POST /api/commands: HTTP {answer.status_code}")

        return post
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(body: str) -> None:
        conn.request("POST", "/api/commands", body, HEADERS)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST /api/commands: HTTP {answer.status}")

    return post


def concurrent_run(cluster, clients: int, seconds: float, client: str, tag: str):
    """``clients`` threads posting commands to the leader for ``seconds``:
    commands per second and the nodes' CPU per command."""
    leader = cluster.leader(timeout=20)
    posters = [_poster(leader.port, client) for _ in range(clients)]
    counts = [0] * clients
    failures: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(n: int) -> None:
        start.wait()
        try:
            while not stop.is_set():
                posters[n](json.dumps({"command": f"{tag}-{n}-{counts[n]}"}))
                counts[n] += 1
        except BaseException as exc:  # reported below, not lost in a thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    cpu_before = cluster_cpu_s(cluster)
    began = time.monotonic()
    start.wait()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - began
    cpu = cluster_cpu_s(cluster) - cpu_before
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}")
    done = sum(counts)
    return {
        "ops_per_s": done / elapsed,
        "cpu_ms_per_command": cpu * 1000 / max(done, 1),
    }


def checkout(spec: str) -> tuple[Path, dict[str, str]]:
    path, _, settings = spec.partition("@")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    return Path(path).resolve(), env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="checkout A (the baseline), optionally @K=V,...")
    parser.add_argument("b", help="checkout B, optionally @K=V,...")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--commands", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--client", choices=("httpclient", "requests"), default="httpclient"
    )
    parser.add_argument(
        "--via-follower",
        action="store_true",
        help="one client's commands to a follower, which forwards them",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.commands < 1 or args.clients < 1:
        parser.error("--rounds, --commands and --clients must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be above 0")
    if args.clients > 1:
        keys = (("ops_per_s", "commands/s"), ("cpu_ms_per_command", "CPU/command"))
    else:
        keys = (("p50_ms", "p50"), ("cpu_ms_per_command", "CPU/command"))
    clusters = {}
    with tempfile.TemporaryDirectory(prefix="raft-ab-") as base:
        try:
            for name, spec in (("A", args.a), ("B", args.b)):
                root, env = checkout(spec)
                if not (root / "manage.py").is_file():
                    parser.error(f"{root}: no manage.py (not a checkout)")
                cluster = LocalCluster(
                    3, base_dir=Path(base) / name, env=env, root=root
                )
                clusters[name] = cluster.start()
            for cluster in clusters.values():
                cluster.leader(timeout=30)
            runs = {"A": [], "B": []}
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    if args.clients > 1:
                        run = concurrent_run(
                            clusters[name],
                            args.clients,
                            args.seconds,
                            args.client,
                            f"r{r}",
                        )
                        first = f"{run['ops_per_s']:.0f} commands/s"
                    else:
                        run = one_run(
                            clusters[name], args.commands, f"r{r}", args.via_follower
                        )
                        first = f"p50 {run['p50_ms']:.3f} ms"
                    runs[name].append(run)
                    print(
                        f"round {r + 1:2d} {name}: {first},"
                        f" nodes' CPU {run['cpu_ms_per_command']:.3f} ms/command",
                        flush=True,
                    )
        finally:
            for cluster in clusters.values():
                cluster.close()
    for key, label in keys:
        ratios = sorted(
            b[key] / a[key] for a, b in zip(runs["A"], runs["B"], strict=True)
        )
        print(
            f"{label}: A median {statistics.median(r[key] for r in runs['A']):.3f},"
            f" B median {statistics.median(r[key] for r in runs['B']):.3f};"
            f" paired B/A {' '.join(f'{x:.2f}' for x in ratios)},"
            f" median {statistics.median(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
