"""The admin for the node's Raft state: its log and persistent state, read-only.

Replicated tables change only through the runtime's loop thread (a client
command, a membership change), never through a form, so every change
permission here is off and operators get view permission only.
"""

import re
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import BooleanField, Case, Value, When
from django.utils.functional import cached_property
from django.utils.text import Truncator

from raftsite.login_throttle import ThrottledAdminLoginForm

from .models import LogEntry, PersistentState
from .runtime import current_runtime
from .snapshots.store import SNAPSHOT_DIR, SnapshotStore

# The admin's title names the node: an operator often has several open.
admin.site.site_header = f"raftsite {settings.RAFT_NODE_ID}".strip()
admin.site.site_title = admin.site.site_header
admin.site.index_title = "Node administration"
# The dashboard is linked from every admin page; there is no public site.
admin.site.site_url = None
# Too many failed logins refuse the form for a while (README "Security").
admin.site.login_form = ThrottledAdminLoginForm


def node_status():
    """This process's NodeStatus, or None when it serves no node (a shell,
    a test) or has not published one yet."""
    runtime = current_runtime()
    return runtime.status() if runtime is not None else None


def snapshot_store() -> SnapshotStore | None:
    """This node's snapshot files: its runtime's store when this process
    serves the node, else the data directory's (settings.RAFT_DATA_DIR), or
    None when that has no snapshots folder (nothing is created to look)."""
    runtime = current_runtime()
    snapshots = getattr(runtime, "snapshots", None)
    if snapshots is not None:
        return snapshots.store
    if not (Path(settings.RAFT_DATA_DIR) / SNAPSHOT_DIR).is_dir():
        return None
    return SnapshotStore(settings.RAFT_DATA_DIR)


def compaction() -> dict | None:
    """{"first_log_index", "snapshot_index"} once the log's head has been
    compacted into a snapshot (Raft §7), else None.

    From the runtime's status when this process serves the node; otherwise
    from the log's first row and the newest snapshot file.
    """
    status = node_status()
    if status is not None:
        first, snapshot_index = status.first_log_index, status.snapshot_index
    else:
        store = snapshot_store()
        latest = store.latest() if store is not None else None
        snapshot_index = latest.last_included_index if latest else 0
        bounds = log_bounds()
        first = bounds[0] if bounds else snapshot_index + 1
    if first <= 1:
        return None
    return {"first_log_index": first, "snapshot_index": snapshot_index}


def log_bounds() -> tuple[int, int] | None:
    """(first, last) index held, or None for an empty log.

    Two ORDER BY ... LIMIT 1 queries on purpose: SQLite answers each from
    the primary key's b-tree, but scans the table for MIN() and MAX() in
    one SELECT.
    """
    indexes = LogEntry.objects.order_by().values_list("index", flat=True)
    first = indexes.order_by("index").first()
    if first is None:
        return None
    return first, indexes.order_by("-index").first()


def committed_expression():
    """Whether each entry is committed, as an annotation.

    Raft §5.3: an entry is committed once at or below the commit index.
    Without a runtime, entries up to last_applied are known committed (only
    committed entries are applied); the others are unknown (NULL).
    """
    status = node_status()
    if status is not None:
        known, otherwise = status.commit_index, Value(False)
    else:
        state = PersistentState.objects.filter(pk=1).first()
        known, otherwise = (state.last_applied if state else 0), Value(None)
    return Case(
        When(index__lte=known, then=Value(True)),
        default=otherwise,
        output_field=BooleanField(null=True),
    )


class LogPaginator(Paginator):
    """Counts the log without scanning it.

    The log holds every index from its first to its last (Raft §5.3: a
    follower appends only after the entry before), so the unfiltered count
    is last - first + 1, read from the primary key. A filtered count stops
    at COUNT_CAP rows; past it the page shows "more than".
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            bounds = log_bounds()
            return 0 if bounds is None else bounds[1] - bounds[0] + 1
        return queryset.order_by()[: self.COUNT_CAP + 1].count()

    @property
    def count_is_capped(self):
        return self.count > self.COUNT_CAP


# A term or index as an operator types it: ASCII digits (str.isdigit() also
# takes "²", which int() refuses) within SQLite's integer range.
_NUMBER = re.compile(r"[0-9]{1,19}")
_MAX_SQLITE_INTEGER = 2**63 - 1


def as_log_number(text: str) -> int | None:
    """``text`` as a term or log index, or None if it is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if number <= _MAX_SQLITE_INTEGER else None


class TermFilter(admin.SimpleListFilter):
    """The newest terms in the log, and any term given as ?term=N."""

    title = "term"
    parameter_name = "term"
    # A long-lived cluster has many terms; the sidebar lists the newest.
    MAX_CHOICES = 20

    def lookups(self, request, model_admin):
        terms = (
            LogEntry.objects.order_by("-term")
            .values_list("term", flat=True)
            .distinct()[: self.MAX_CHOICES]
        )
        return [(str(term), str(term)) for term in terms]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        term = as_log_number(value)
        if term is None:
            raise IncorrectLookupParameters(f"term must be a number, not {value!r}")
        return queryset.filter(term=term)


class CommittedFilter(admin.SimpleListFilter):
    title = "committed"
    parameter_name = "committed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(committed=True)
        if self.value() == "no":
            return queryset.exclude(committed=True)
        return queryset


def refuse_unsafe(request) -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        raise PermissionDenied


class ReadOnlyAdmin(admin.ModelAdmin):
    """View permission only: no add, change or delete, and no actions."""

    actions = None

    # Django opens a transaction on the model's database for an unsafe
    # request to these views before it checks permissions, and SQLite's
    # BEGIN IMMEDIATE takes the write lock: refusing first keeps request
    # threads off the lock the loop thread needs to persist.
    def changeform_view(self, request, *args, **kwargs):
        refuse_unsafe(request)
        return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        refuse_unsafe(request)
        return super().delete_view(request, *args, **kwargs)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    list_display = ["index", "term", "type", "committed_flag", "command_text"]
    list_filter = ["type", TermFilter, CommittedFilter]
    search_fields = ["command"]
    search_help_text = "Words of a command, or a log index."
    ordering = ["-index"]
    # Sorting on another column would sort the whole table on every page.
    sortable_by = ["index"]
    paginator = LogPaginator
    list_per_page = 100
    # Django would otherwise COUNT(*) the whole table for "N total".
    show_full_result_count = False
    # Facet counts would count the table once per filter choice.
    show_facets = admin.ShowFacets.NEVER
    fields = [
        "index", "term", "type", "command", "client_id", "seq", "committed_flag"
    ]  # fmt: skip
    readonly_fields = ["committed_flag"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(committed=committed_expression())

    def changelist_view(self, request, extra_context=None):
        # The template says where the entries below the first one went.
        extra_context = {"compaction": compaction(), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(
            request, queryset, search_term
        )
        index = as_log_number(search_term.strip())
        if index is not None:
            # An index is what an operator copies from a client's answer.
            found = found | queryset.filter(index=index)
        return found, may_have_duplicates

    @admin.display(description="command")
    def command_text(self, entry):
        return Truncator(entry.command).chars(80)

    @admin.display(description="committed", boolean=True)
    def committed_flag(self, entry):
        return entry.committed


@admin.register(PersistentState)
class PersistentStateAdmin(ReadOnlyAdmin):
    """Raft Figure 2's persistent state, with the runtime's volatile state
    (role, commit index, leader) beside it."""

    list_display = [
        "node", "role", "current_term", "voted_for", "commit_index",
        "last_applied", "last_log_index", "leader",
    ]  # fmt: skip
    list_display_links = ["node"]
    fields = list_display
    readonly_fields = ["node", "role", "commit_index", "last_log_index", "leader"]

    @admin.display(description="node")
    def node(self, state):
        status = node_status()
        return status.id if status else settings.RAFT_NODE_ID or "(not serving)"

    @admin.display(description="role")
    def role(self, state):
        return self._volatile("role")

    @admin.display(description="commit index")
    def commit_index(self, state):
        return self._volatile("commit_index")

    @admin.display(description="last log index")
    def last_log_index(self, state):
        return self._volatile("last_log_index")

    @admin.display(description="leader")
    def leader(self, state):
        status = node_status()
        if status is None:
            return "-"
        return status.leader or "none known"

    @staticmethod
    def _volatile(name):
        # Volatile state lives in the runtime, not the table: a process that
        # serves no node (a shell, a test) has none to show.
        status = node_status()
        return "-" if status is None else getattr(status, name)
