"""Models of the nodes app: Server and Snapshot, which back the admin's servers
and snapshots pages.

The cluster's configuration lives in the Raft log (consensus.LogEntry, as
CONFIG entries); Server has no table, so nothing can write membership
around consensus.
"""

from django.db import models


class Server(models.Model):
    """A cluster member, as listed by GET /api/servers."""

    id = models.CharField(max_length=300, primary_key=True)  # host:port

    class Meta:
        managed = False
        verbose_name = "server"
        verbose_name_plural = "servers"

    def __str__(self):
        return self.id


class Snapshot(models.Model):
    """A snapshot file of this node (Raft §7), as listed by the admin's
    snapshots page from ``<data dir>/snapshots/``.

    Snapshots are files (consensus.snapshots.store), not rows: Snapshot has
    no table; it gives the page its admin entry and permissions (view: the
    list and the download; add: take one now).
    """

    name = models.CharField(max_length=100, primary_key=True)  # snap-<index>-<term>

    class Meta:
        managed = False
        verbose_name = "snapshot"
        verbose_name_plural = "snapshots"

    def __str__(self):
        return self.name
