"""GET /api/backup (issue 13): a consistent copy of the applied state at a
committed index, which is a snapshot of this server (Raft §7), taken now.
The file is the snapshot's SQLite database, which names its own index, term
and configuration; the headers repeat them with its size and sha256, for
``manage.py backup`` to check and ``manage.py restore`` to seed a new
cluster from."""

from __future__ import annotations

import sqlite3

from django.http import FileResponse
from rest_framework.views import APIView

from consensus.errors import CommandTimeout
from consensus.snapshots.take import NothingToSnapshot

from . import errors
from .views import serving_runtime

TAKE_TIMEOUT_S = 120.0


class BackupView(APIView):
    required_permission = "admin"

    def get(self, request):
        runtime = serving_runtime()
        if runtime.snapshots is None:
            raise errors.Unavailable("This node is still starting. Retry later.")
        try:
            runtime.take_snapshot(timeout=TAKE_TIMEOUT_S)
        except NothingToSnapshot:
            pass  # the latest snapshot covers every applied entry
        except (OSError, sqlite3.Error) as exc:
            raise errors.Unavailable(f"Taking a snapshot failed: {exc}.") from None
        except CommandTimeout:
            raise errors.TimedOut("The snapshot was not durable in time.") from None
        store = runtime.snapshots.store
        # A newer snapshot may remove this one between the listing and the
        # open; once open, the file stays readable to the end.
        for _attempt in range(3):
            meta = store.latest()
            if meta is None:
                raise errors.Conflict("This node has no snapshot to back up.")
            try:
                data = open(store.data_path(meta), "rb")
            except FileNotFoundError:
                continue
            response = FileResponse(
                data,
                as_attachment=True,
                filename=f"raftsite-backup-{meta.name}.sqlite3",
                content_type="application/vnd.sqlite3",
            )
            response["Content-Length"] = str(meta.size)
            response["X-Raft-Snapshot-Index"] = str(meta.last_included_index)
            response["X-Raft-Snapshot-Term"] = str(meta.last_included_term)
            response["X-Raft-Snapshot-Sha256"] = meta.checksum
            return response
        raise errors.Unavailable("Snapshots kept changing; retry.")
