"""The admin's servers page: the members as the leader sees them, an add
form and a remove action.

Every change takes the membership API's own path on this node, in process
(nodes.local), which forwards it to the leader, so it is a log entry agreed
by consensus, never a row edit. The page works from any node; the outcome
reaches the admin user through django.contrib.messages.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from consensus.addresses import InvalidAddress, normalise_address
from consensus.models import MembershipChange

# These register their pages: autodiscover imports admin.py alone.
from . import (  # noqa: F401
    kv_admin,
    local,
    membership_admin,
    snapshot_admin,
    user_admin,
)
from .auth import Caller, site_caller
from .client import ClientError
from .forwarding import member_leader
from .membership_client import (
    ADD_TIMEOUT_S,
    REMOVE_TIMEOUT_S,
    MembershipClient,
    describe_change,
)
from .models import Server
from .tls import node_ca

# Reading the servers must not hang the page on a stuck node.
READ_TIMEOUT_S = 3.0
# The servers page lists the newest membership changes; the rest have a page.
RECENT_CHANGES = 5


class AddServerForm(forms.Form):
    address = forms.CharField(
        max_length=300,
        help_text=(
            "host:port or :port. Start that server first with --cluster naming "
            "the current members, so it waits as a non-member; it joins as a "
            "learner and becomes a voter once caught up (up to 30 s)."
        ),
    )

    def clean_address(self):
        try:
            return normalise_address(self.cleaned_data["address"])
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from None


def this_node() -> str:
    """The node serving this admin: every request goes to its API."""
    return settings.RAFT_NODE_ID


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    """Not a changelist of rows: Server has no table (see nodes.models)."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view  # login and staff required
        return [
            path("", wrap(self.servers_view), name="{}_{}_changelist".format(*info)),
            path("add/", wrap(self.add_server_view), name="{}_{}_add".format(*info)),
            path(
                "<str:address>/remove/",
                wrap(self.remove_server_view),
                name="{}_{}_remove".format(*info),
            ),
        ]

    def has_change_permission(self, request, obj=None):
        return False  # a member is added or removed, never edited

    # --- views -------------------------------------------------------------

    def servers_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        view = self._leader_view(request)
        return self._render(
            request,
            "admin/nodes/server/servers.html",
            {
                "title": "Servers",
                "view": view,
                "form": AddServerForm(),
                "can_add": self.has_add_permission(request),
                "can_remove": self.has_delete_permission(request),
                "changes": recent_changes(request),
            },
        )

    def add_server_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AddServerForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            address = form.cleaned_data["address"]
            try:
                with local.node_client(ADD_TIMEOUT_S, _caller(request)) as node:
                    change = node.add_server(address)
            except ClientError as exc:
                messages.error(request, f"Could not add {address}: {exc}.")
            else:
                messages.success(request, describe_change(change, "Added"))
                return redirect(self._changelist_url())
        return self._render(
            request,
            "admin/nodes/server/add.html",
            {"title": "Add a server", "form": form},
        )

    def remove_server_view(self, request, address):
        if not self.has_delete_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return self._render(
                request,
                "admin/nodes/server/remove.html",
                {"title": f"Remove {address}?", "address": address},
            )
        try:
            with local.node_client(REMOVE_TIMEOUT_S, _caller(request)) as node:
                change = node.remove_server(address)
        except ClientError as exc:
            messages.error(request, f"Could not remove {address}: {exc}.")
        else:
            messages.success(request, describe_change(change, "Removed"))
        return redirect(self._changelist_url())

    # --- helpers -----------------------------------------------------------

    def _leader_view(self, request) -> dict | None:
        """This node's GET /api/servers (in process: nodes.local), then the
        leader's over HTTP if another node leads (only a leader knows match
        indexes and last contact)."""
        try:
            with local.node_client(READ_TIMEOUT_S) as node:
                view = node.servers()
        except ClientError as exc:
            messages.error(request, f"Cannot read the servers: {exc}.")
            return None
        leader = view.get("leader")
        members = {server.get("id") for server in view.get("servers") or ()}
        if member_leader(leader, members) is None:
            # Not a server of the configuration: a hint not to act on.
            leader = None
        if view.get("role") == "leader" or not leader or leader == view.get("id"):
            if not leader:
                messages.warning(request, f"{view.get('id')} knows no leader now.")
            return view
        try:
            with MembershipClient(leader, READ_TIMEOUT_S, ca=node_ca()) as client:
                return client.servers()
        except ClientError as exc:
            messages.warning(
                request,
                f"Showing {view.get('id')}'s view: the leader's failed ({exc}).",
            )
            return view

    def _changelist_url(self):
        return reverse(
            "admin:nodes_server_changelist", current_app=self.admin_site.name
        )

    def _render(self, request, template, context):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "node": this_node(),
            **context,
        }
        return TemplateResponse(request, template, context)


def recent_changes(request) -> list[dict] | None:
    """The newest membership changes this node has applied, for a user who
    may view them (None otherwise)."""
    if not request.user.has_perm("consensus.view_membershipchange"):
        return None
    return [
        {
            "index": change.index,
            "time": membership_admin.utc_time(change.timestamp_ms),
            "requested_by": membership_admin.requested_by_text(change),
            "voters": membership_admin.voters_text(change),
            "learners": membership_admin.learners_text(change),
        }
        for change in MembershipChange.objects.order_by("-index")[:RECENT_CHANGES]
    ]


def _caller(request) -> Caller:
    """Who asks, as membership changes record it: this site's login."""
    return site_caller(request.user.get_username())
