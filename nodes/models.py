"""Models of the nodes app: only Server, which backs the admin's servers page.

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
