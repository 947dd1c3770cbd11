"""manage.py restore: seed a new server's data directory from a backup
(issue 13), as ``etcdctl snapshot restore`` does: the applied state at the
backup's index becomes the server's snapshot, with the new cluster's
configuration in place of the old one. Run it once per new server, with the
same --cluster; started, they elect a leader and go on from that index.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consensus.core.configuration import Configuration
from consensus.models import AppliedState, PersistentState
from consensus.snapshots.store import (
    SnapshotMeta,
    SnapshotStore,
    file_digest,
    fsync_file,
)
from consensus.snapshots.tables import APPLIED_STATE, META_TABLE, READABLE_FORMATS
from consensus.storage import Storage
from raftsite.security import private_data_dir

from ..data_dirs import addresses, rerun_for


class Command(BaseCommand):
    help = (
        "Seed the data directory of a new cluster's server from a backup "
        "(manage.py backup): the backup's applied state, with --cluster as "
        "the configuration. Run it for every new server with the same "
        "--cluster, then start each with runnode --data-dir."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("backup", help="the file manage.py backup wrote")
        parser.add_argument("--data-dir", required=True, help="a new data directory")
        parser.add_argument(
            "--cluster",
            required=True,
            help="the new cluster's servers, comma-separated host:port (voters)",
        )

    def handle(self, *args, **options):
        backup = Path(options["backup"]).expanduser().resolve()
        data_dir = Path(options["data_dir"]).expanduser().resolve()
        members = addresses(options["cluster"], "--cluster")
        if (data_dir / "db.sqlite3").exists():
            raise CommandError(f"{data_dir} already holds a node's database")
        index, term, configuration_index = read_backup(backup)
        if data_dir != Path(settings.RAFT_DATA_DIR).resolve():
            # Settings name the database once, at start-up.
            args = [str(backup), "--data-dir", str(data_dir)]
            rerun_for(data_dir, "restore", args + ["--cluster", ",".join(members)],
                      self.stdout)  # fmt: skip
            return
        configuration = Configuration(frozenset(members)).to_json()
        try:
            warning = private_data_dir(data_dir)
        except OSError as exc:
            raise CommandError(f"cannot create {data_dir}: {exc}") from None
        if warning:
            self.stderr.write(warning)
        umask = os.umask(0o077)
        try:
            Storage().prepare([])  # the schema; no bootstrap log
            # A log entry of a later term may never be below this one: the
            # new cluster's first election starts from the backup's term.
            PersistentState.objects.filter(pk=1).update(current_term=term)
            AppliedState.objects.get_or_create(pk=1)
            store = SnapshotStore(data_dir)
            copy = store.temporary_path("restore")
            shutil.copyfile(backup, copy)
            _set_configuration(copy, configuration)
            fsync_file(copy)
            size, checksum = file_digest(copy)
            meta = SnapshotMeta(
                last_included_index=index,
                last_included_term=term,
                configuration=configuration,
                size=size,
                checksum=checksum,
                created=time.time(),
                configuration_index=configuration_index,
            )
            store.publish(copy, meta)
        finally:
            os.umask(umask)
        self.stdout.write(
            f"Seeded {data_dir} from the backup at index {index} (term {term}) "
            f"for the cluster {', '.join(members)}; start it with runnode "
            "--data-dir (its --cluster is not read: the backup's configuration "
            "was replaced)"
        )


def read_backup(path: Path) -> tuple[int, int, int]:
    """(index, term, configuration_index) of a backup file; CommandError if
    it is no backup this version can restore."""
    if not path.is_file():
        raise CommandError(f"no backup file {path}")
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            rows = db.execute(
                f'SELECT "format", "last_included_index", "last_included_term",'
                f' "configuration_index" FROM "{META_TABLE}"'
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CommandError(f"{path} is not a backup ({exc})") from None
    if check != "ok" or len(rows) != 1:
        raise CommandError(f"{path} is damaged or not a backup ({check})")
    file_format, index, term, configuration_index = rows[0]
    if file_format not in READABLE_FORMATS:
        raise CommandError(f"{path} has format {file_format}, unknown to this version")
    return index, term, configuration_index


def _set_configuration(path: Path, configuration: str) -> None:
    """The new cluster's configuration in the copy: its metadata row, and
    the applied state it restores (a new cluster, as etcd's restore)."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(
                f'UPDATE "{META_TABLE}" SET "configuration" = ?', [configuration]
            )
            db.execute(
                f'UPDATE "{APPLIED_STATE}" SET "configuration" = ?', [configuration]
            )
    finally:
        db.close()
