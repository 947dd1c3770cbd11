"""The node's durable state: its log, Figure 2's persistent state, and the
replicated state machine's applied state."""

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
    # The leader's wall clock when it appended a COMMAND (ms since the
    # epoch); 0 for other entries. Sessions end by it (consensus.sessions).
    timestamp_ms = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["index"]
        verbose_name = "log entry"
        verbose_name_plural = "log entries"

    def __str__(self):
        return f"{self.index}@{self.term} {self.type} {self.command[:40]}"


class PersistentState(models.Model):
    """One row: Raft Figure 2's current_term and voted_for, and last_applied.

    last_applied is written by the state machine, in the transaction that
    applies a batch of entries (consensus.state_machine), so it always
    counts exactly what the applied state holds.
    """

    current_term = models.PositiveBigIntegerField(default=0)
    voted_for = models.CharField(max_length=300, null=True, blank=True)
    last_applied = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "persistent state"
        verbose_name_plural = "persistent state"

    def __str__(self):
        return f"term {self.current_term}, voted for {self.voted_for}"


class AppliedState(models.Model):
    """One row: the replicated state machine's own state beside its messages.

    Written in the transaction that applies entries and advances
    PersistentState.last_applied, so after a crash the two always agree.
    """

    # The number of client messages applied: Count's answer, and the
    # position of the latest AppliedMessage.
    message_count = models.PositiveBigIntegerField(default=0)
    # The latest configuration applied (its JSON); null before the first.
    configuration = models.TextField(null=True, blank=True)
    # The index of the CONFIG entry that configuration came from (0: none):
    # a snapshot's metadata names it (dissertation Figure 5.1).
    configuration_index = models.PositiveBigIntegerField(default=0)
    # The session clock: the highest timestamp_ms of the entries applied so
    # far (0: none had one). Client sessions end by it, never by a local
    # clock, so every server ends them at the same entry.
    session_clock_ms = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name = "applied state"
        verbose_name_plural = "applied state"

    def __str__(self):
        return f"{self.message_count} messages"


class AppliedMessage(models.Model):
    """The toy's message list, one row per message, in apply order."""

    position = models.PositiveBigIntegerField(primary_key=True)  # 1, 2, ...
    command = models.TextField()

    class Meta:
        ordering = ["position"]

    def __str__(self):
        return f"{self.position}: {self.command[:40]}"


class ClientSession(models.Model):
    """One client's session (dissertation §6.3), keyed by its client_id.

    The rules are consensus.sessions': a session ends once the session
    clock is more than the TTL past ``last_active_ms``; its answers are
    then dropped and the row kept as a tombstone (``ended``) until a second
    TTL has passed, when the client_id is forgotten.
    """

    client_id = models.CharField(max_length=200, primary_key=True)
    # The session clock when the client's latest command (applied or a
    # repeat answered from here) was applied.
    last_active_ms = models.BigIntegerField()
    # The highest seq ever applied for the client.
    max_seq = models.BigIntegerField()
    # A seq below this is refused: its answer, if it had one, is no longer
    # kept (evicted beyond the bound, or dropped when the session ended).
    min_seq = models.BigIntegerField(default=0)
    # How many ClientAnswer rows the client has (at most the bound).
    answers = models.PositiveIntegerField(default=0)
    ended = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # The expiry pass: live sessions idle past the TTL, tombstones
            # past two, oldest first, without scanning the table.
            models.Index(fields=["ended", "last_active_ms"], name="session_expiry")
        ]

    def __str__(self):
        state = "ended" if self.ended else f"{self.answers} answers"
        return f"{self.client_id} ({state}, seq {self.min_seq}..{self.max_seq})"


class ClientAnswer(models.Model):
    """The first answer to a client's (client_id, seq): the index and term
    of the first entry that carried it, while its session keeps it."""

    client_id = models.CharField(max_length=200)
    seq = models.BigIntegerField()
    index = models.PositiveBigIntegerField()
    term = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client_id", "seq"], name="one_answer")
        ]

    def __str__(self):
        return f"{self.client_id}#{self.seq} -> {self.index}@{self.term}"


class ClusterUser(models.Model):
    """A client of the API (issue 10, CONTRACT.md "Security settings"), the
    same on every server: created and changed only by ACCESS entries applied
    from the log (consensus.access), never by a local write.

    Not a Django login: those (accounts.sqlite3) are each node's own."""

    username = models.CharField(max_length=150, primary_key=True)
    # Comma-separated, in PERMISSIONS order: "read,write,admin".
    permissions = models.CharField(max_length=32)
    created_index = models.PositiveBigIntegerField()
    # The leader's clock when it appended the entry (ms since the epoch).
    created_ms = models.BigIntegerField()
    created_by = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["username"]
        verbose_name = "cluster user"
        verbose_name_plural = "cluster users"

    def __str__(self):
        return f"{self.username} ({self.permissions})"


class ClusterToken(models.Model):
    """A user's API token. Only its SHA-256 digest is kept (the token is
    shown once, to whoever created it); ``token_id`` names it in lists and
    revocation, and is the token's own visible prefix."""

    digest = models.CharField(max_length=64, primary_key=True)
    token_id = models.CharField(max_length=16, unique=True)
    username = models.CharField(max_length=150, db_index=True)
    created_index = models.PositiveBigIntegerField()
    created_ms = models.BigIntegerField()
    created_by = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["username", "created_index"]
        verbose_name = "cluster token"
        verbose_name_plural = "cluster tokens"

    def __str__(self):
        return f"{self.token_id} ({self.username})"


class MembershipChange(models.Model):
    """Who asked for a configuration (issue 10): one row per CONFIG entry
    applied after the first, with the leader's time and the log index."""

    index = models.PositiveBigIntegerField(primary_key=True)
    timestamp_ms = models.BigIntegerField()
    # The user (token), "<login> (admin site)", or "" when the API was open
    # to anyone (RAFT_AUTH not required) and no token was given.
    requested_by = models.CharField(max_length=300, blank=True, default="")
    configuration = models.TextField()

    class Meta:
        ordering = ["-index"]
        verbose_name = "membership change"
        verbose_name_plural = "membership changes"

    def __str__(self):
        return f"{self.index}: {self.configuration}"


class KeyValue(models.Model):
    """The replicated key-value map (issue 12; CONTRACT.md "Key-value
    store"), written only by KV entries applied from the log
    (consensus/kv.py). ``revision``: the index of the entry that last
    wrote the key (etcd's mod_revision)."""

    # Compared as UTF-8 bytes (SQLite's BINARY collation): keys list in
    # byte order.
    key = models.CharField(max_length=512, primary_key=True)
    value = models.TextField()
    revision = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["key"]
        verbose_name = "key"
        verbose_name_plural = "keys"

    def __str__(self):
        return f"{self.key}@{self.revision}"


class KeyEvent(models.Model):
    """The recent history of the map, for watches: one row per applied put
    or delete, by revision. Rows older than the history window
    (RAFT_KV_HISTORY_ENTRIES log indexes) are dropped in apply, the same
    on every server."""

    revision = models.PositiveBigIntegerField(primary_key=True)
    type = models.CharField(max_length=6)  # "put" or "delete"
    key = models.CharField(max_length=512)
    value = models.TextField(null=True)

    class Meta:
        ordering = ["revision"]

    def __str__(self):
        return f"{self.revision} {self.type} {self.key}"
