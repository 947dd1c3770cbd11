"""The admin's membership changes: each configuration after the first, with
who asked for it and when (issue 10), read-only. Rows are written only by
the state machine when it applies a CONFIG entry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin

from consensus.admin import ReadOnlyAdmin
from consensus.core.configuration import Configuration
from consensus.models import MembershipChange

# requested_by is empty when the API was open to anyone and no token came.
OPEN_API = "open API"


def utc_time(ms: int) -> str:
    """A leader's timestamp (ms since the epoch) as UTC; "-" for 0, which
    entries from before timestamps carry."""
    if not ms:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def configuration_of(change: MembershipChange) -> Configuration | None:
    try:
        return Configuration.from_json(change.configuration)
    except (ValueError, KeyError, TypeError):
        return None


def voters_text(change: MembershipChange) -> str:
    configuration = configuration_of(change)
    return ", ".join(sorted(configuration.voters)) if configuration else "?"


def learners_text(change: MembershipChange) -> str:
    configuration = configuration_of(change)
    if configuration is None:
        return "?"
    return ", ".join(sorted(configuration.learners)) or "-"


def requested_by_text(change: MembershipChange) -> str:
    return change.requested_by or OPEN_API


@admin.register(MembershipChange)
class MembershipChangeAdmin(ReadOnlyAdmin):
    list_display = ["index", "time", "requested_by_shown", "voters", "learners"]
    ordering = ["-index"]
    search_fields = ["requested_by", "configuration"]
    search_help_text = "Who asked, or a server's address."
    fields = [
        "index", "time", "requested_by_shown", "voters", "learners", "configuration"
    ]  # fmt: skip
    readonly_fields = ["time", "requested_by_shown", "voters", "learners"]

    @admin.display(description="time", ordering="timestamp_ms")
    def time(self, change):
        return utc_time(change.timestamp_ms)

    @admin.display(description="requested by", ordering="requested_by")
    def requested_by_shown(self, change):
        return requested_by_text(change)

    @admin.display(description="voters")
    def voters(self, change):
        return voters_text(change)

    @admin.display(description="learners")
    def learners(self, change):
        return learners_text(change)
