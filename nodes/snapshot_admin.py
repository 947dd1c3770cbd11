"""The admin's snapshots page: this node's snapshot files (Raft §7), a "take
a snapshot now" action and a download of the newest file.

Snapshots are files in ``<data dir>/snapshots/`` (consensus.snapshots.store),
not rows, and each node has its own: the page lists those of the node this
admin runs on. Taking one asks this process's runtime; without one (an admin
run beside a stopped node) the page still lists the files.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse

from consensus.admin import node_status, snapshot_store
from consensus.errors import CommandTimeout
from consensus.runtime import current_runtime
from consensus.snapshots.store import SnapshotMeta
from consensus.snapshots.take import NothingToSnapshot

from .models import Snapshot

# How long "take a snapshot now" waits for the file to be durable and the
# log compacted (the runtime's own default).
TAKE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot file as the page shows it."""

    meta: SnapshotMeta
    created: datetime | None
    voters: tuple[str, ...]
    learners: tuple[str, ...]

    @classmethod
    def of(cls, meta: SnapshotMeta) -> SnapshotRow:
        voters, learners = configuration_of(meta)
        created = datetime.fromtimestamp(meta.created, UTC) if meta.created else None
        return cls(meta, created, voters, learners)


def configuration_of(meta: SnapshotMeta) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(voters, learners) of the configuration a snapshot carries."""
    try:
        data = json.loads(meta.configuration or "{}")
        return tuple(data.get("voters", ())), tuple(data.get("learners", ()))
    except (ValueError, AttributeError):
        return (), ()


def download_name(meta: SnapshotMeta) -> str:
    """raftsite-<host>_<port>-snap-<index>-<term>.sqlite3: which node and
    which snapshot, with no colon (the data directory's own spelling)."""
    node = (settings.RAFT_NODE_ID or "node").replace(":", "_")
    return f"raftsite-{node}-{meta.name}.sqlite3"


def take_snapshot_now() -> tuple[int, str]:
    """Ask this process's runtime for a snapshot now; (message level, text)."""
    runtime = current_runtime()
    if runtime is None:
        return messages.ERROR, (
            "Cannot take a snapshot: the node is not running in this process "
            "(start it with runnode). Nothing was taken."
        )
    if runtime.snapshots is None:
        # The runtime opens its snapshots with the data directory.
        return messages.ERROR, (
            "Cannot take a snapshot: the node is still starting. "
            "Nothing was taken; try again in a moment."
        )
    try:
        meta = runtime.take_snapshot(timeout=TAKE_TIMEOUT_S)
    except (OSError, sqlite3.Error) as exc:
        # A full or failing disk: the node goes on without it.
        return messages.ERROR, f"Taking a snapshot failed: {exc}."
    except NothingToSnapshot:
        status = node_status()
        applied = f" (last applied {status.last_applied})" if status else ""
        return messages.WARNING, (
            "Nothing new to snapshot: the latest snapshot already covers every "
            f"applied entry{applied}."
        )
    except CommandTimeout:
        return messages.ERROR, (
            f"The snapshot was not durable within {TAKE_TIMEOUT_S:g} s; it may "
            "still complete. Reload this page to see."
        )
    text = (
        f"Took snapshot {meta.name}: the applied state up to index "
        f"{meta.last_included_index} (term {meta.last_included_term}), "
        f"{filesizeformat(meta.size)}."
    )
    status = node_status()
    if status is not None and status.first_log_index > 1:
        text += f" The log now starts at index {status.first_log_index}."
    return messages.SUCCESS, text


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    """Not a changelist of rows: Snapshot has no table (see nodes.models)."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view  # login, staff and CSRF
        return [
            path("", wrap(self.snapshots_view), name="{}_{}_changelist".format(*info)),
            path("take/", wrap(self.take_view), name="{}_{}_take".format(*info)),
            path(
                "download/",
                wrap(self.download_view),
                name="{}_{}_download".format(*info),
            ),
        ]

    # Taking one is "add"; a snapshot file is never edited or deleted here
    # (the runtime removes those a newer one supersedes).
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- views -------------------------------------------------------------

    def snapshots_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        store = snapshot_store()
        metas = store.list() if store is not None else []
        status = node_status()
        return self._render(
            request,
            "admin/nodes/snapshot/snapshots.html",
            {
                "title": "Snapshots",
                "rows": [SnapshotRow.of(meta) for meta in reversed(metas)],
                "latest": metas[-1] if metas else None,
                "download_name": download_name(metas[-1]) if metas else None,
                "directory": store.directory if store is not None else None,
                "status": status,
                "transfers": [
                    peer
                    for peer in (status.peers if status else ())
                    if peer.snapshot_index is not None
                ],
                "serving": current_runtime() is not None,
                "can_take": self.has_add_permission(request),
                "snapshot_entries": settings.RAFT_SNAPSHOT_ENTRIES,
                "snapshot_trailing": settings.RAFT_SNAPSHOT_TRAILING,
            },
        )

    def take_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        level, text = take_snapshot_now()
        messages.add_message(request, level, text)
        return redirect(self._changelist_url())

    def download_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        store = snapshot_store()
        # A newer snapshot may remove this one between the listing and the
        # open; once open, the file stays readable to the end.
        for _attempt in range(2):
            meta = store.latest() if store is not None else None
            if meta is None:
                messages.warning(request, "There is no snapshot to download yet.")
                return redirect(self._changelist_url())
            try:
                data = open(store.data_path(meta), "rb")
            except FileNotFoundError:
                continue
            response = FileResponse(
                data,
                as_attachment=True,
                filename=download_name(meta),
                content_type="application/vnd.sqlite3",
            )
            # RFC 9530: the file's sha256, to check the download against.
            digest = base64.b64encode(bytes.fromhex(meta.checksum)).decode()
            response["Repr-Digest"] = f"sha-256=:{digest}:"
            return response
        messages.warning(request, "The newest snapshot changed meanwhile; try again.")
        return redirect(self._changelist_url())

    # --- helpers -----------------------------------------------------------

    def _changelist_url(self):
        return reverse(
            "admin:nodes_snapshot_changelist", current_app=self.admin_site.name
        )

    def _render(self, request, template, context):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "node": settings.RAFT_NODE_ID,
            **context,
        }
        return TemplateResponse(request, template, context)
