"""What the benchmark reads about the machine and about a node: the load
average, each node's resident memory (/proc), its data directory's size and
what fills it (database, snapshots, log rows). Standard library only."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

from tests.cluster.harness import group_members

_MANIFEST = re.compile(r"^snap-(\d+)-(\d+)\.json$")
MB = 2**20


def machine() -> dict:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def node_rss(node) -> dict:
    """VmRSS of a running node's gunicorn master and its worker(s)."""
    master = node.pid
    workers = [p for p in group_members(master) if p != master]
    row = {
        "node": node.address,
        "restarts": node.incarnation,
        "master_mb": rss_mb(master),
        "worker_mb": sum(rss_mb(p) for p in workers),
        "workers": len(workers),
    }
    row["total_mb"] = row["master_mb"] + row["worker_mb"]
    return row


def node_memory(cluster) -> list[dict]:
    return [node_rss(node) for node in cluster.nodes]


def disk_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except FileNotFoundError:
            pass  # a temporary file removed meanwhile
    return total


def latest_snapshot(data_dir: Path) -> dict | None:
    """The manifest of the data directory's newest published snapshot."""
    directory = Path(data_dir) / "snapshots"
    if not directory.is_dir():
        return None
    best = None
    for path in directory.iterdir():
        m = _MANIFEST.match(path.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    if best is None:
        return None
    try:
        return json.loads(best[1].read_text())
    except (OSError, ValueError):
        return None  # removed meanwhile by a newer snapshot


def disk_usage(data_dir: Path) -> dict:
    """The data directory's size and what it holds. The log rows are read on
    a read-only connection of our own (a reader never blocks the node)."""
    data_dir = Path(data_dir)
    snapshots_dir = data_dir / "snapshots"
    manifests = (
        [p for p in snapshots_dir.iterdir() if _MANIFEST.match(p.name)]
        if snapshots_dir.is_dir()
        else []
    )
    db = data_dir / "db.sqlite3"

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    latest = latest_snapshot(data_dir)
    row = {
        "total_mb": disk_bytes(data_dir) / MB,
        "db_mb": size(db) / MB,
        "wal_mb": size(db.with_name("db.sqlite3-wal")) / MB,
        "snapshots_mb": disk_bytes(snapshots_dir) / MB if snapshots_dir.is_dir() else 0,
        "snapshot_files": len(manifests),
        "snapshot_index": latest["last_included_index"] if latest else 0,
        "latest_snapshot_mb": latest["size"] / MB if latest else 0.0,
    }
    row.update(_log_rows(db))
    return row


def _log_rows(db: Path) -> dict:
    empty = {"log_first": None, "log_last": None, "log_entries": None, "free_mb": None}
    if not db.exists():
        return empty
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return empty
    try:
        # The log has no holes: its size is last - first + 1.
        first, last = conn.execute(
            'SELECT MIN("index"), MAX("index") FROM consensus_logentry'
        ).fetchone()
        (free_pages,) = conn.execute("PRAGMA freelist_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    except sqlite3.Error:
        return empty
    finally:
        conn.close()
    return {
        "log_first": first,
        "log_last": last,
        "log_entries": 0 if first is None else last - first + 1,
        # Pages freed by deleted rows: SQLite reuses them, it does not
        # shrink the file.
        "free_mb": free_pages * page_size / MB,
    }
