"""The node's durable Raft state: its log and Figure 2's persistent state."""

from django.db import models

from .core.messages import EntryType

# The core's entry types are the column's choices: one name in every layer.
ENTRY_TYPE_CHOICES = [(t.value, t.value.capitalize()) for t in EntryType]


class LogEntry(models.Model):
    index = models.PositiveBigIntegerField(primary_key=True)
    term = models.PositiveBigIntegerField()
    type = models.CharField(
        max_length=8, choices=ENTRY_TYPE_CHOICES, default=EntryType.COMMAND.value
    )
    command = models.TextField(blank=True, default="")
    client_id = models.CharField(max_length=200, null=True, blank=True)
    seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        verbose_name = "log entry"
        verbose_name_plural = "log entries"

    def __str__(self):
        return f"{self.index}@{self.term} {self.type} {self.command[:40]}"


class PersistentState(models.Model):
    """One row: Raft Figure 2's current_term and voted_for, and last_applied.

    last_applied is written in the same transaction as each batch, so a
    restarted node re-applies nothing it already applied.
    """

    current_term = models.PositiveBigIntegerField(default=0)
    voted_for = models.CharField(max_length=300, null=True, blank=True)
    last_applied = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "persistent state"
        verbose_name_plural = "persistent state"

    def __str__(self):
        return f"term {self.current_term}, voted for {self.voted_for}"
