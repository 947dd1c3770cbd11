#!/usr/bin/env python
"""Snapshot figures: take (time, size), restore, and a transfer over loopback
HTTP, for N applied messages loaded straight into a temporary data directory.

    .venv/bin/python bench/snapshots.py 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(db_path: Path, messages: int, sessions: int) -> None:
    """N applied messages (about 25 bytes each) and client sessions, as if
    entries 1..N of term 3 were applied; the log holds the last 5000."""
    db = sqlite3.connect(db_path)
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
            " WHERE i < ?) INSERT INTO consensus_appliedmessage"
            " SELECT i, 'I like beer, message ' || i FROM n",
            (messages,),
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
            " WHERE i < ?) INSERT INTO consensus_clientanswer"
            ' (client_id, seq, "index", term)'
            " SELECT 'client-' || (i % 100), i, i * 10, 3 FROM n",
            (sessions,),
        )
        db.execute(
            "INSERT INTO consensus_clientsession"
            " (client_id, last_active_ms, max_seq, min_seq, answers, ended)"
            " SELECT client_id, 0, MAX(seq), 0, COUNT(*), 0"
            " FROM consensus_clientanswer GROUP BY client_id"
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n"
            " WHERE i < ?) INSERT INTO consensus_logentry"
            " (\"index\", term, type, command) SELECT i, 3, 'command', 'x' FROM n",
            (max(1, messages - 4999), messages),
        )
        db.execute("UPDATE consensus_persistentstate SET last_applied = ?", (messages,))
        db.execute(
            "UPDATE consensus_appliedstate SET message_count = ?, configuration = ?",
            (messages, '{"voters":["127.0.0.1:9990"],"learners":[]}'),
        )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("counts", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument(
        "--gunicorn",
        action="store_true",
        help="also send to a follower in its own gunicorn process (as runnode)",
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="raft-snapbench-"))
    os.environ["RAFT_DATA_DIR"] = str(base / "leader")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")
    (base / "leader").mkdir()
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection

    from consensus.snapshots import SnapshotStore
    from consensus.snapshots.restore import restore
    from consensus.snapshots.sender import SnapshotSender
    from consensus.state_machine import StateMachine
    from consensus.storage import Storage
    from tests.consensus.snapshots.loopback import DjangoServer, FollowerRuntime

    print(f"load average before: {open('/proc/loadavg').read().strip()}")
    try:
        for count in args.counts:
            with connection.cursor() as cursor:
                for table in (
                    "consensus_appliedmessage",
                    "consensus_clientsession",
                    "consensus_clientanswer",
                    "consensus_logentry",
                ):
                    if _exists(cursor, table):
                        cursor.execute(f"DELETE FROM {table}")
            Storage().prepare([])
            db_path = base / "leader" / "db.sqlite3"
            load(db_path, count, count // 10)
            store = SnapshotStore(base / "leader")
            for old in store.list():
                store.remove_older_than(old.last_included_index + 1)
            stalls = _Stalls()
            started = time.perf_counter()
            meta = store.take(db_path)
            took = time.perf_counter() - started
            stalls.stop()
            print(
                f"{count} messages, {count // 10} sessions: take {took:.2f} s,"
                f" {meta.size / 1e6:.1f} MB; another Python thread's longest"
                f" stall meanwhile {stalls.longest * 1000:.1f} ms"
            )

            started = time.perf_counter()
            restore(store, meta, keep_log_after=True)
            restored = time.perf_counter() - started
            sm = StateMachine()
            sm.load()
            assert sm.last_applied == count and sm.message_count == count
            print(f"  restore (verify + one FULL transaction) {restored:.2f} s")

            follower = FollowerRuntime(SnapshotStore(base / f"follower-{count}"))
            apps.get_app_config("consensus").runtime = follower
            server = DjangoServer()
            done = threading.Event()
            results = []
            started = time.perf_counter()
            SnapshotSender(
                store,
                meta,
                peer=server.address,
                leader_id="127.0.0.1:9990",
                term=4,
                on_done=lambda r, results=results, done=done: (
                    results.append(r),
                    done.set(),
                ),
            ).start()
            done.wait(600)
            seconds = time.perf_counter() - started
            server.close()
            apps.get_app_config("consensus").runtime = None
            assert results and results[0].ok, results
            print(
                f"  transfer over loopback, in process (wsgiref): {seconds:.2f} s,"
                f" {meta.size / seconds / 1e6:.1f} MB/s (1 MiB chunks, base64 JSON)"
            )
            if args.gunicorn:
                seconds = _send_to_gunicorn(store, meta, base / f"gunicorn-{count}")
                print(
                    f"  transfer over loopback to gunicorn: {seconds:.2f} s,"
                    f" {meta.size / seconds / 1e6:.1f} MB/s"
                )
        print(f"load average after: {open('/proc/loadavg').read().strip()}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _send_to_gunicorn(store, meta, data_dir: Path) -> float:
    import http.client
    import socket
    import subprocess

    from consensus.snapshots.sender import SnapshotSender

    data_dir.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, RAFT_DATA_DIR=str(data_dir))
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--worker-class=gthread",
            "--threads=8",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            f"--pythonpath={ROOT / 'bench'}",
            "snapshot_follower:application",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # One request first: Django loads its URLs and DRF at the first one.
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        warm.request("GET", "/api/status")
        warm.getresponse().read()
        warm.close()
        done = threading.Event()
        results = []
        started = time.perf_counter()
        SnapshotSender(
            store,
            meta,
            peer=f"127.0.0.1:{port}",
            leader_id="127.0.0.1:9990",
            term=4,
            on_done=lambda r: (results.append(r), done.set()),
        ).start()
        done.wait(600)
        seconds = time.perf_counter() - started
        assert results and results[0].ok, results
        return seconds
    finally:
        server.terminate()
        server.wait(10)


class _Stalls:
    """A thread that sleeps 1 ms at a time, as a stand-in for the loop
    thread: how long it waited at worst for the GIL while a take ran."""

    def __init__(self):
        self.longest = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        while not self._stopped.is_set():
            before = time.perf_counter()
            time.sleep(0.001)
            self.longest = max(self.longest, time.perf_counter() - before - 0.001)

    def stop(self):
        self._stopped.set()
        self._thread.join()


def _exists(cursor, table: str) -> bool:
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [table])
    return cursor.fetchone() is not None


if __name__ == "__main__":
    main()
