#!/usr/bin/env python
"""How fast the admin's log changelist answers with 100,000 entries.

Fills a throwaway node database (its own temporary RAFT_DATA_DIR), logs in
with Django's test client and times the changelist pages an operator uses:
the newest page, a deep page, the oldest page, each filter and a search.
Not part of ``make test``: ``.venv/bin/python bench/admin_changelist.py``.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "newest page": "",
    "middle page": "?p={middle_page}",
    "oldest page": "?p={last_page}",
    "type=noop": "?type__exact=noop",
    "term=3": "?term=3",
    "committed=no": "?committed=no",
    "search index": "?q={middle}",
    "search words": "?q=entry+4242",
}


class FakeRuntime:
    """Publishes a status like a serving node's, so the committed column is
    computed as on a live node (everything but the last 50 entries)."""

    def __init__(self, status):
        self._status = status

    def status(self):
        return self._status


def fill(entries: int) -> None:
    from consensus.models import LogEntry, PersistentState

    rows, batch = [], 5000
    for index in range(1, entries + 1):
        # Terms rise along the log, as they do in any Raft log.
        term = 1 + index * 10 // entries
        kind = "noop" if index % 997 == 0 else "command"
        command = "" if kind == "noop" else f"entry {index} of the benchmark"
        rows.append(LogEntry(index=index, term=term, type=kind, command=command))
        if len(rows) == batch:
            LogEntry.objects.bulk_create(rows)
            rows = []
    LogEntry.objects.bulk_create(rows)
    PersistentState.objects.create(pk=1, current_term=11, last_applied=entries - 50)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per page")
    args = parser.parse_args(argv)

    data_dir = tempfile.mkdtemp(prefix="bench-admin-")
    try:
        return run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args, data_dir: str) -> int:
    os.environ["RAFT_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.apps import apps
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from consensus.status import NodeStatus

    call_command("migrate", verbosity=0)
    call_command("migrate", database="accounts", verbosity=0)  # the login
    started = time.perf_counter()
    fill(args.entries)
    print(f"filled {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
    apps.get_app_config("consensus").runtime = FakeRuntime(
        NodeStatus(
            id="127.0.0.1:9990", role="leader", term=11, leader="127.0.0.1:9990",
            commit_index=args.entries - 50, last_applied=args.entries - 50,
            last_log_index=args.entries, servers=(),
        )
    )  # fmt: skip
    client = Client()
    client.force_login(User.objects.create_superuser("bench", password="bench"))
    last_page = -(-args.entries // 100)
    values = {
        "last_page": last_page,
        "middle_page": last_page // 2,
        "middle": args.entries // 2,
    }

    # Other work on the machine slows every figure: say how busy it was.
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'page':<14} {'median ms':>10} {'max ms':>8}  (of {args.runs} runs)")
    worst = 0.0
    for label, query in PAGES.items():
        url = "/admin/consensus/logentry/" + query.format(**values)
        client.get(url)  # warm the page cache and the template loader
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                print(f"{label}: HTTP {response.status_code} for {url}")
                return 1
        worst = max(worst, max(times))
        print(f"{label:<14} {statistics.median(times):>10.1f} {max(times):>8.1f}")
    print(f"slowest answer: {worst:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
