#!/usr/bin/env python
"""Fill a stopped node's data directory up to N applied commands through the
node's own storage layer, as if a leader had replicated them and the node had
applied them; bench/run.py's long run uses it for the sizes it does not load
through the API.

    RAFT_DATA_DIR=<dir> .venv/bin/python bench/fill.py --to 1000000 --term 3

Takes the data directory's lock (the node must be stopped), then in batches
of --batch entries: ``Storage.save`` writes them to the log (one fsynced
transaction, as a Ready's save), ``StateMachine.apply_batch`` applies them
with last_applied (one transaction, as the loop's apply). With --compact it
also takes a snapshot and compacts the log by RAFT_SNAPSHOT_ENTRIES and
RAFT_SNAPSHOT_TRAILING whenever the policy asks, after a batch, with the
same functions as the runtime (SnapshotStore.take, compact_log). Every node
of a cluster filled with the same --to and --term holds the same log.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=int, required=True, help="last index to reach")
    parser.add_argument("--term", type=int, required=True, help="term of new entries")
    parser.add_argument(
        "--expect-last",
        type=int,
        help="refuse unless the log's last index is this (every node alike)",
    )
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument(
        "--compact", action="store_true", help="snapshot and compact as the policy asks"
    )
    args = parser.parse_args(argv)
    data_dir = Path(os.environ["RAFT_DATA_DIR"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")

    from consensus.datadir import DataDirLock

    lock = DataDirLock(data_dir)
    lock.acquire()  # refuses a directory a running node holds
    try:
        result = fill(data_dir, args)
    finally:
        lock.release()
    json.dump(result, sys.stdout)
    print()
    return 0


def fill(data_dir: Path, args) -> dict:
    import django

    django.setup()
    from django.db import connection

    from consensus.core.messages import Entry, EntryType
    from consensus.snapshots.policy import policy_from_settings
    from consensus.snapshots.restore import compact_log
    from consensus.snapshots.store import SnapshotStore
    from consensus.state_machine import StateMachine
    from consensus.storage import Storage

    started = time.monotonic()
    storage = Storage()
    restored = storage.prepare([])
    del restored  # the log as loaded at start: not needed past this point
    state_machine = StateMachine()
    state_machine.load()
    last = storage.last_index
    if state_machine.last_applied != last:
        raise SystemExit(
            f"last_applied {state_machine.last_applied} != last index {last}:"
            " stop the node only once it applied its whole log"
        )
    if args.expect_last is not None and last != args.expect_last:
        raise SystemExit(f"the log ends at {last}, not at {args.expect_last}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_term FROM consensus_persistentstate")
        (current_term,) = cursor.fetchone()
        cursor.execute(
            'SELECT term FROM consensus_logentry ORDER BY "index" DESC LIMIT 1'
        )
        (last_term,) = cursor.fetchone() or (0,)
    # Raft's log terms never decrease, and no entry is of a term its node
    # has not reached.
    if not last_term <= args.term <= current_term:
        raise SystemExit(
            f"--term {args.term} is not between the last entry's term"
            f" {last_term} and current_term {current_term}"
        )
    prepare_s = time.monotonic() - started

    policy = policy_from_settings()
    store = SnapshotStore(data_dir)
    latest = store.latest()
    covered = latest.last_included_index if latest else 0
    db_path = data_dir / "db.sqlite3"
    save_s = apply_s = snapshot_s = 0.0
    snapshots = compacted = 0
    index = last
    while index < args.to:
        entries = [
            Entry(i, args.term, EntryType.COMMAND, f"fill-{i}")
            for i in range(index + 1, min(args.to, index + args.batch) + 1)
        ]
        t0 = time.monotonic()
        storage.save(None, entries, None)
        t1 = time.monotonic()
        state_machine.apply_batch(entries)
        t2 = time.monotonic()
        save_s += t1 - t0
        apply_s += t2 - t1
        index = entries[-1].index
        if args.compact and policy.should_snapshot(index, covered):
            meta = store.take(db_path, min_index=covered + 1)
            covered = meta.last_included_index
            first = _first_log_index(connection)
            through = policy.compact_through(covered, first)
            if through >= first:
                compacted += compact_log(store, through)
            store.remove_older_than(covered)
            snapshots += 1
            snapshot_s += time.monotonic() - t2
    # Leave no fill-sized WAL behind: the disk figures are the node's own.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    return {
        "data_dir": str(data_dir),
        "from_index": last,
        "to_index": index,
        "term": args.term,
        "seconds": time.monotonic() - started,
        "prepare_s": prepare_s,
        "save_s": save_s,
        "apply_s": apply_s,
        "snapshots": snapshots,
        "snapshot_s": snapshot_s,
        "compacted": compacted,
    }


def _first_log_index(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute('SELECT MIN("index") FROM consensus_logentry')
        (first,) = cursor.fetchone()
    return first or 1


if __name__ == "__main__":
    sys.exit(main())
