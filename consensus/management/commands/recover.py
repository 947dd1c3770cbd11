"""manage.py recover: make the survivors of a lost majority a cluster again
(issue 13), in the manner of etcd's --force-new-cluster and hashicorp/raft's
peers.json recovery.

Run on each stopped survivor's data directory with the same --members: it
appends to the log a configuration entry naming only those members, at the
next index and the current term. On restart the latest configuration in a
log rules (dissertation §4.1) whether committed or not, so the survivors,
a majority of the new configuration, elect a leader among themselves, which
commits the entry. Unsafe by nature: entries the lost servers had committed
and no survivor holds are gone for good, and two groups recovered apart
would be two clusters. The README says when to use it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consensus.core.configuration import Configuration
from consensus.core.messages import Entry, EntryType
from consensus.datadir import DataDirectoryInUse, DataDirLock
from consensus.models import AppliedState
from consensus.snapshots.store import SnapshotStore
from consensus.storage import Storage

from ..data_dirs import addresses, rerun_for


class Command(BaseCommand):
    help = (
        "On a stopped server whose cluster lost a majority for good: append a "
        "configuration naming only --members (the survivors), so that they "
        "form a cluster again when restarted. Run it on every survivor with "
        "the same --members. Prints the change; makes it only with --yes. "
        "Entries only the lost servers held are lost."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--data-dir", required=True, help="the survivor's data directory"
        )
        parser.add_argument(
            "--members",
            required=True,
            help="the survivors, comma-separated host:port (every one a voter)",
        )
        parser.add_argument("--yes", action="store_true", help="make the change")

    def handle(self, *args, **options):
        data_dir = Path(options["data_dir"]).expanduser().resolve()
        members = addresses(options["members"], "--members")
        if not (data_dir / "db.sqlite3").is_file():
            raise CommandError(f"{data_dir} holds no node's database")
        if data_dir != Path(settings.RAFT_DATA_DIR).resolve():
            # Settings name the database once, at start-up: another node's
            # database needs another process.
            args = ["--data-dir", str(data_dir), "--members", ",".join(members)]
            rerun_for(
                data_dir, "recover", args + ["--yes"] * options["yes"], self.stdout
            )
            return
        lock = DataDirLock(data_dir)
        try:
            lock.acquire()
        except DataDirectoryInUse as exc:
            raise CommandError(f"{exc}: stop the node first") from None
        try:
            self._recover(data_dir, members, options["yes"])
        finally:
            lock.release()

    def _recover(self, data_dir: Path, members: list[str], yes: bool) -> None:
        storage = Storage()
        restored = storage.load()
        snapshot = SnapshotStore(data_dir).latest()
        last_index, last_term = 0, 0
        if snapshot is not None:
            last_index = snapshot.last_included_index
            last_term = snapshot.last_included_term
        if restored.entries and restored.entries[-1].index >= last_index:
            last_index, last_term = (
                restored.entries[-1].index,
                restored.entries[-1].term,
            )
        now = _current_configuration(restored.entries, snapshot)
        term = max(restored.hard_state.current_term, last_term)
        new = Configuration(frozenset(members))
        self.stdout.write(
            f"{data_dir}: term {restored.hard_state.current_term}, log through "
            f"index {last_index} (term {last_term}), applied through "
            f"{restored.last_applied}"
        )
        self.stdout.write(f"configuration now: {_describe(now)}")
        self.stdout.write(
            f"will append at index {last_index + 1} (term {term}): " f"{_describe(new)}"
        )
        if not yes:
            raise CommandError("nothing changed: run again with --yes to append it")
        storage.save(
            None, [Entry(last_index + 1, term, EntryType.CONFIG, new.to_json())], None
        )
        self.stdout.write(
            "Appended. Start this server (with the others of --members, each "
            "recovered alike); they elect a leader among themselves."
        )


def _current_configuration(entries, snapshot) -> Configuration | None:
    """The latest configuration this server knows (§4.1): its log's latest
    CONFIG entry, else its snapshot's, else the applied state's."""
    for entry in reversed(entries):
        if entry.type is EntryType.CONFIG:
            return Configuration.from_json(entry.command)
    text = snapshot.configuration if snapshot is not None else None
    if text is None:
        state = AppliedState.objects.filter(pk=1).first()
        text = state.configuration if state else None
    return Configuration.from_json(text) if text else None


def _describe(configuration: Configuration | None) -> str:
    if configuration is None:
        return "none"
    voters = ", ".join(sorted(configuration.voters)) or "none"
    learners = ", ".join(sorted(configuration.learners))
    return f"voters {voters}" + (f"; learners {learners}" if learners else "")
