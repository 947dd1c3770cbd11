"""The long run (issue 9, a node that runs for months): RSS, restart time and
disk per node at growing numbers of applied commands, then a server added to
the cluster that holds the most. Sizes up to --entries are loaded through
the API (the memory section); larger ones are written with bench/fill.py
into the stopped nodes' data directories. See bench/README.md."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench.closedloop import run_clients
from bench.memory import checkpoint, measure_memory, restart_follower, start_timed
from bench.nodestats import MB, disk_usage, fmt_load, latest_snapshot, node_rss
from tests.cluster.harness import ROOT, LocalCluster, free_ports, manage

FILL = Path(__file__).resolve().parent / "fill.py"
# The nodes' snapshot policy, as raftsite/settings.py reads it.
SNAPSHOT_ENTRIES = int(os.environ.get("RAFT_SNAPSHOT_ENTRIES", "10000"))
SNAPSHOT_TRAILING = int(os.environ.get("RAFT_SNAPSHOT_TRAILING", "5000"))


class Joiner(LocalCluster):
    """One server outside the cluster: its --cluster names the members, not
    itself, so it waits as a non-member until added."""

    def __init__(self, members: str, **kwargs):
        super().__init__(1, **kwargs)
        self.members = members

    @property
    def cluster_arg(self) -> str:
        return self.members


def run_longrun(args, base: Path) -> tuple[dict, dict]:
    """Returns (the memory section's figures, the long run's)."""
    ports = free_ports(4)
    cluster = LocalCluster(3, base_dir=base / "longrun", ports=ports[:3])
    joiner = Joiner(cluster.cluster_arg, base_dir=base / "joiner", ports=ports[3:])
    api_sizes = [s for s in args.sizes if s <= args.entries]
    fill_sizes = [s for s in args.sizes if s > args.entries]
    try:
        cluster.start()
        cluster.leader(timeout=30)
        print(f"longrun: {api_sizes or [args.entries]} through the API ...", flush=True)
        memory = measure_memory(cluster, args, checkpoints=api_sizes)
        rows = [r for r in memory["checkpoints"] if r["size"] in api_sizes]
        taken = any(latest_snapshot(n.data_dir) for n in cluster.nodes)
        compact = args.fill_compact == "yes" or (args.fill_compact == "auto" and taken)
        for size in fill_sizes:
            print(f"longrun: {size} written into the stopped nodes ...", flush=True)
            rows.append(grow_offline(cluster, size, compact, args))
        print("longrun: add a server ...", flush=True)
        added = add_server(cluster, joiner, args)
    except BaseException:
        print(cluster.describe(tail=30), file=sys.stderr)
        print(joiner.describe(tail=30), file=sys.stderr)
        raise
    finally:
        joiner.close()
        cluster.close()
    return memory, {
        "snapshot_entries": SNAPSHOT_ENTRIES,
        "snapshot_trailing": SNAPSHOT_TRAILING,
        "snapshots_during_api_load": taken,
        "fill_compact": compact,
        "checkpoints": rows,
        "add_server": added,
    }


def quiesce(cluster, timeout: float = 120.0) -> tuple[int, int]:
    """Wait until every node holds and applied the leader's whole log;
    return (its last index, the leader's term)."""

    def settled():
        leader = cluster.agreed_leader()
        if leader is None:
            return None
        status = cluster.status(leader)
        last = status["last_log_index"]
        if status["commit_index"] != last:
            return None
        for node in cluster.nodes:
            s = cluster.status(node)
            if s["last_log_index"] != last or s["last_applied"] != last:
                return None
        return last, status["term"]

    return cluster.wait_until(settled, timeout, "every node applied the whole log")


def grow_offline(cluster, size: int, compact: bool, args) -> dict:
    """Stop every node, fill each data directory to ``size`` (bench/fill.py),
    start them all again (timed), write --settle-entries through the API,
    read RSS and disk, then restart one follower (timed)."""
    last, term = quiesce(cluster)
    stop_all(cluster)
    fills = fill_all(cluster, size, last, term, compact, args.fill_timeout)
    cold = start_timed(cluster, {n: size for n in cluster.nodes}, args.restart_timeout)
    leader = cluster.leader(timeout=60)
    settle_errors = {}
    if args.settle_entries:
        _, settle_errors, _ = run_clients(
            leader.base_url,
            args.load_clients,
            args.threads_per_proc,
            f"settle{size}",
            total=args.settle_entries,
        )
    row = checkpoint(cluster, size, "fill")
    row.update(
        filled_from=last,
        fills=fills,
        cold_start=cold,
        settle_errors=settle_errors,
        follower_restart=restart_follower(cluster),
    )
    return row


def stop_all(cluster) -> None:
    """SIGTERM every node at once: stopped one by one, the last ones could
    elect a leader meanwhile and append to their logs without the others."""
    for node in cluster.nodes:
        if node.running():
            node.proc.send_signal(signal.SIGTERM)
    for node in cluster.nodes:
        cluster.stop(node)


def fill_all(
    cluster, size: int, last: int, term: int, compact: bool, timeout: float
) -> dict:
    """bench/fill.py on every (stopped) node's data directory, in parallel;
    each refuses unless its log ends at ``last``, so all get the same log."""
    procs = []
    results = {}
    deadline = time.monotonic() + timeout
    try:
        for node in cluster.nodes:
            env = cluster.node_env()
            env["RAFT_DATA_DIR"] = str(node.data_dir)
            argv = [sys.executable, str(FILL), "--to", str(size), "--term", str(term)]
            argv += ["--expect-last", str(last)]
            if compact:
                argv.append("--compact")
            procs.append(
                (
                    node,
                    subprocess.Popen(
                        argv,
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        for node, proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"fill of {node.address} failed: {err[-2000:]}")
            results[node.address] = json.loads(out)
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


class _JoinWatch(threading.Thread):
    """Polls the new server every 20 ms: when a snapshot transfer starts (a
    receiving temporary file appears), when it is published (a manifest
    appears), and when the server's own status first says it votes."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.started = time.monotonic()
        self.transfer_start: float | None = None
        # The last poll that saw neither the temporary file nor a manifest:
        # a transfer shorter than a poll starts after it.
        self.before_transfer = self.started
        self.transfer_end: float | None = None
        self.snapshot: dict | None = None
        self.voter_at: float | None = None
        self.halt = threading.Event()

    def run(self):
        session = requests.Session()
        directory = self.node.data_dir / "snapshots"
        while not self.halt.wait(0.02):
            now = time.monotonic()
            if self.transfer_end is None and directory.is_dir():
                names = [p.name for p in directory.iterdir()]
                receiving = any(n.startswith("tmp-receive") for n in names)
                if self.transfer_start is None and receiving:
                    self.transfer_start = now
                snapshot = latest_snapshot(self.node.data_dir)
                if snapshot is not None:
                    self.transfer_end, self.snapshot = now, snapshot
                elif not receiving:
                    self.before_transfer = now
            if self.voter_at is None:
                try:
                    status = session.get(
                        self.node.base_url + "/api/status", timeout=(0.2, 1.0)
                    ).json()
                    if status["role"] in ("follower", "candidate", "leader"):
                        self.voter_at = now
                except (requests.RequestException, ValueError, KeyError):
                    pass
        session.close()


def add_server(cluster, joiner, args) -> dict:
    """Start a non-member and time ``manage.py addserver`` to it."""
    last, _ = quiesce(cluster)
    leader = cluster.leader(timeout=30)
    joiner.start()
    new = joiner.nodes[0]
    joiner.wait_until(lambda: joiner.try_status(new), 60, "the new server serves")
    watch = _JoinWatch(new)
    watch.start()
    started = time.monotonic()
    try:
        result = manage(
            "addserver",
            new.address,
            "-S",
            leader.address,
            "--timeout",
            str(args.add_timeout),
            timeout=args.add_timeout + 30,
        )
        # Its answer is on stdout, or its error last on stderr (after the
        # catch-up progress lines).
        code = result.returncode
        output = result.stdout.strip() or result.stderr.strip()
    except subprocess.TimeoutExpired:
        code, output = None, f"no answer within {args.add_timeout + 30:.0f} s"
    elapsed = time.monotonic() - started
    applied_s = None
    if code == 0:
        try:
            cluster.wait_applied(last, [new], timeout=120)
            applied_s = time.monotonic() - started
        except AssertionError:
            pass
    watch.halt.set()
    watch.join()
    row = {
        "node": new.address,
        "log_size": last,
        "exit_code": code,
        "output": output.splitlines()[-1] if output else "",
        "command_s": elapsed,
        "voter_s": None if watch.voter_at is None else watch.voter_at - started,
        "applied_s": applied_s,
        "rss": node_rss(new) if new.running() else None,
        "disk": disk_usage(new.data_dir),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if watch.snapshot is not None:
        # Not seen receiving: it took less than one poll, and started after
        # the last poll that saw nothing (the rate is then a lower bound).
        start = watch.transfer_start or watch.before_transfer
        seconds = watch.transfer_end - start
        row["snapshot"] = {
            "index": watch.snapshot["last_included_index"],
            "size_mb": watch.snapshot["size"] / MB,
            "seconds": seconds,
            "start_seen": watch.transfer_start is not None,
            "mb_per_s": watch.snapshot["size"] / MB / seconds,
        }
    row["snapshot_sent"] = sent_lines(cluster, new.address)
    return row


SENT = re.compile(
    r"^Sent snapshot through (\d+) to (\S+) \((\d+) bytes in ([\d.]+) s\)$"
)


def sent_lines(cluster, peer: str) -> list[dict]:
    """The leaders' own account of each snapshot sent to ``peer``: its
    "Sent snapshot through N to P (B bytes in S s)" lines."""
    sent = []
    for node in cluster.nodes:
        for event in cluster.events(node, all_incarnations=True):
            m = SENT.match(event)
            if m and m.group(2) == peer:
                index, size, seconds = int(m.group(1)), int(m.group(3)), m.group(4)
                sent.append(
                    {
                        "leader": node.address,
                        "index": index,
                        "size_mb": size / MB,
                        "seconds": float(seconds),
                    }
                )
    return sent


# -- report ----------------------------------------------------------------


def _per_node(values, fmt="{:.0f}") -> str:
    return "/".join("-" if v is None else fmt.format(v) for v in values)


def report(lr: dict) -> list[str]:
    out = [
        "",
        f"long run: RAFT_SNAPSHOT_ENTRIES {lr['snapshot_entries']},"
        f" RAFT_SNAPSHOT_TRAILING {lr['snapshot_trailing']}; snapshots taken during"
        f" the API load: {'yes' if lr['snapshots_during_api_load'] else 'no'};"
        f" fill snapshots and compacts: {'yes' if lr['fill_compact'] else 'no'}",
        "  per node (the three nodes, /-separated); RSS = gunicorn master + worker",
    ]
    for row in lr["checkpoints"]:
        nodes = row["nodes"]
        disks = [n["disk"] for n in nodes]
        out.append(
            f"  {row['applied']:>9,} applied ({row['via']}, load {fmt_load(row['loadavg'])}):"
            f" RSS {_per_node([n['total_mb'] for n in nodes])} MB,"
            f" disk {_per_node([d['total_mb'] for d in disks])} MB"
            f" (snapshots {_per_node([d['snapshots_mb'] for d in disks], '{:.1f}')} MB,"
            f" log {_per_node([d['log_entries'] for d in disks])} entries)"
        )
        if "cold_start" in row:
            cold = row["cold_start"].values()
            fill = max(f["seconds"] for f in row["fills"].values())
            r = row["follower_restart"]
            out.append(
                f"      filled {row['filled_from']:,} -> {row['size']:,} in {fill:.0f} s;"
                f" cluster start to serving {_per_node([c['restart_s'] for c in cold], '{:.2f}')} s;"
                f" follower restart {r['restart_s']:.2f} s (RSS after {r['total_mb']:.0f} MB)"
            )
    add = lr.get("add_server")
    if add:
        voter = "-" if add["voter_s"] is None else f"{add['voter_s']:.1f} s"
        out.append(
            f"  add a server at {add['log_size']:,} entries: addserver exit"
            f" {add['exit_code']} after {add['command_s']:.1f} s (voter seen {voter}):"
            f" {add['output']}"
        )
        snap = add.get("snapshot")
        if snap:
            bound = "" if snap["start_seen"] else " (under one poll: at least)"
            out.append(
                f"      snapshot {snap['size_mb']:.1f} MB (index {snap['index']:,})"
                f" received in {snap['seconds']:.2f} s: {snap['mb_per_s']:.1f} MB/s"
                + bound
            )
        else:
            out.append("      no snapshot was received")
        for sent in add.get("snapshot_sent", []):
            out.append(
                f"      {sent['leader']} says: sent {sent['size_mb']:.1f} MB"
                f" (index {sent['index']:,}) in {sent['seconds']:.1f} s"
            )
    return out


def disk_bound_entries(lr: dict) -> int:
    """The most log entries a node may hold under the policy: the trailing
    window, one interval of new entries, and one more while a snapshot is
    being taken."""
    return lr["snapshot_trailing"] + 2 * lr["snapshot_entries"]


def targets(lr: dict, check) -> None:
    """Add the long run's targets with ``check(name, value, target, ok)``."""
    largest = max(lr["checkpoints"], key=lambda r: r["size"], default=None)
    if largest is None:
        return
    size = f"{largest['size']:,}"
    rss = [n["total_mb"] for n in largest["nodes"]]
    if "follower_restart" in largest:
        rss.append(largest["follower_restart"]["total_mb"])
    check(f"max RSS MB per node at {size}", max(rss), "< 150", lambda v: v < 150)
    if "follower_restart" in largest:
        check(f"restart to serving s at {size}",
              largest["follower_restart"]["restart_s"], "< 2",
              lambda v: v < 2)  # fmt: skip
    entries = max(n["disk"]["log_entries"] or 0 for n in largest["nodes"])
    files = max(n["disk"]["snapshot_files"] for n in largest["nodes"])
    bound = disk_bound_entries(lr)
    check(f"log entries kept at {size} (snapshots <= 2)", entries, f"<= {bound}",
          lambda v: v <= bound and files <= 2)  # fmt: skip
    add = lr.get("add_server")
    if add:
        check(f"addserver at {add['log_size']:,} to voter s", add["command_s"],
              "< 60", lambda v: add["exit_code"] == 0 and v < 60)  # fmt: skip
