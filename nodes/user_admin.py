"""The admin's cluster users page: the client API's users and their tokens
(ids, never digests), with forms to create a token, change a user's
permissions, revoke a token and delete a user.

The tables change only when an ACCESS entry applies (consensus.access), on
every server alike: each form takes the API's own path on this node, in
process (nodes.token_views), which has the leader append the entry. The
entry records the admin login as who asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from consensus import access
from consensus.models import ClusterToken, ClusterUser
from consensus.runtime import current_runtime

from . import token_views
from .auth import site_caller
from .client import Answer
from .forwarding import answer_in_process, process_forwarder
from .membership_admin import utc_time


class PermissionsField(forms.MultipleChoiceField):
    """Checkboxes of PERMISSIONS, cleaned as the API parses them (in
    PERMISSIONS order, as the entry stores them)."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(
            choices=[(name, name) for name in access.PERMISSIONS],
            help_text=(
                "read: the log; write: commands; admin: servers, leadership "
                "and users."
            ),
            **kwargs,
        )

    def clean(self, value):
        try:
            return access.parse_permissions(super().clean(value))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class CreateTokenForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="Made if new; an existing user gets these permissions.",
    )
    permissions = PermissionsField()

    def clean_username(self):
        try:
            return access.check_username(self.cleaned_data["username"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class PermissionsForm(forms.Form):
    permissions = PermissionsField()


@dataclass(frozen=True)
class UserRow:
    user: ClusterUser
    tokens: list[ClusterToken]

    @property
    def permissions(self) -> list[str]:
        return self.user.permissions.split(",")

    @property
    def created(self) -> str:
        return utc_time(self.user.created_ms)


def user_rows() -> list[UserRow]:
    """Every user with its tokens, as this node has applied the log."""
    tokens: dict[str, list[ClusterToken]] = {}
    for token in ClusterToken.objects.all():
        tokens.setdefault(token.username, []).append(token)
    return [
        UserRow(user, tokens.get(user.username, []))
        for user in ClusterUser.objects.all()
    ]


def committed_text(body: dict) -> str:
    """Where the change went: its index, and which leader appended it."""
    text = f"committed at index {body.get('index')} (term {body.get('term')})"
    if body.get("forwarded"):
        return f"{text}, forwarded to the leader"
    return f"{text} by {body.get('leader')}, the leader"


def error_text(answer: Answer) -> str:
    """An API error as one line for an admin message."""
    body = answer.body or {}
    detail = body.get("detail") or f"HTTP {answer.status}"
    return " ".join(str(detail).split())


@admin.register(ClusterUser)
class ClusterUserAdmin(admin.ModelAdmin):
    """Not Django's changelist: its add, change and delete views would
    write the rows locally, and only applied ACCESS entries may."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view  # login, staff and CSRF
        name = "{}_{}_{{}}".format(*info)
        return [
            path("", wrap(self.users_view), name=name.format("changelist")),
            # "add": the admin's index links its "+ Add" here.
            path("add/", wrap(self.create_token_view), name=name.format("add")),
            path(
                "tokens/<str:token_id>/revoke/",
                wrap(self.revoke_token_view),
                name=name.format("revoke"),
            ),
            path(
                "<str:username>/permissions/",
                wrap(self.permissions_view),
                name=name.format("permissions"),
            ),
            path(
                "<str:username>/delete/",
                wrap(self.delete_user_view),
                name=name.format("delete"),
            ),
        ]

    # --- views -------------------------------------------------------------

    def users_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self._render(
            request,
            "users.html",
            {
                "title": "Cluster users",
                "rows": user_rows(),
                "can_add": self.has_add_permission(request),
                "can_change": self.has_change_permission(request),
                "can_delete": self.has_delete_permission(request),
            },
        )

    def create_token_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CreateTokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            username = form.cleaned_data["username"]
            permissions = form.cleaned_data["permissions"]
            body = self._ask(
                request,
                f"Could not create a token for {username}",
                lambda runtime, forwarder, caller: token_views.create_token(
                    runtime, forwarder, username, permissions, caller=caller
                ),
            )
            if body is not None:
                response = self._render(
                    request,
                    "token_created.html",
                    {
                        "title": f"New token for {username}",
                        "body": body,
                        "committed": committed_text(body),
                    },
                )
                # The token is on this page alone: no cache may keep it.
                add_never_cache_headers(response)
                return response
        return self._render(
            request, "create_token.html", {"title": "Create a token", "form": form}
        )

    def permissions_view(self, request, username):
        if not self.has_change_permission(request):
            raise PermissionDenied
        user = ClusterUser.objects.filter(username=username).first()
        initial = {"permissions": user.permissions.split(",")} if user else None
        form = PermissionsForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            permissions = form.cleaned_data["permissions"]
            body = self._ask(
                request,
                f"Could not change {username}'s permissions",
                lambda runtime, forwarder, caller: token_views.set_permissions(
                    runtime, forwarder, username, permissions, caller=caller
                ),
            )
            if body is not None:
                messages.success(
                    request,
                    f"{username} now has {', '.join(permissions)}: "
                    f"{committed_text(body)}.",
                )
                return redirect(self._users_url())
        return self._render(
            request,
            "permissions.html",
            {
                "title": f"Change {username}'s permissions",
                "username": username,
                "known": user is not None,
                "form": form,
            },
        )

    def revoke_token_view(self, request, token_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        token = ClusterToken.objects.filter(token_id=token_id).first()
        return self._confirm(
            request,
            title=f"Revoke token {token_id}?",
            question=(
                f"Revoke token {token_id}"
                + (f" of {token.username}" if token else "")
                + "? Every server refuses it once the entry applies; the user "
                "and its other tokens stay."
            ),
            failed=f"Could not revoke token {token_id}",
            call=lambda runtime, forwarder, caller: token_views.revoke_token(
                runtime, forwarder, token_id, caller=caller
            ),
            done=f"Revoked token {token_id}",
        )

    def delete_user_view(self, request, username):
        if not self.has_delete_permission(request):
            raise PermissionDenied
        return self._confirm(
            request,
            title=f"Delete {username}?",
            question=f"Delete the user {username} and all its tokens?",
            failed=f"Could not delete {username}",
            call=lambda runtime, forwarder, caller: token_views.delete_user(
                runtime, forwarder, username, caller=caller
            ),
            done=f"Deleted {username} and its tokens",
        )

    # --- helpers -----------------------------------------------------------

    def _confirm(self, request, *, title, question, failed, call, done):
        """A confirmation page on GET; on POST the change, then the list."""
        if request.method != "POST":
            return self._render(
                request, "confirm.html", {"title": title, "question": question}
            )
        body = self._ask(request, failed, call)
        if body is not None:
            messages.success(request, f"{done}: {committed_text(body)}.")
        return redirect(self._users_url())

    def _ask(self, request, failed: str, call) -> dict | None:
        """The body of ``call(runtime, forwarder, caller)``'s answer when the
        change committed; otherwise None, with ``failed`` and the reason as
        an error message."""
        runtime = current_runtime()
        if runtime is None:
            messages.error(
                request,
                f"{failed}: the node is not running in this process (start it "
                "with runnode); nothing was changed.",
            )
            return None
        caller = site_caller(request.user.get_username())
        answer = answer_in_process(lambda: call(runtime, process_forwarder(), caller))
        if answer.status == 200 and answer.body is not None:
            return answer.body
        messages.error(request, f"{failed}: {error_text(answer)}")
        return None

    def _users_url(self):
        return reverse(
            "admin:consensus_clusteruser_changelist", current_app=self.admin_site.name
        )

    def _render(self, request, template, context):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            **context,
        }
        return TemplateResponse(
            request, f"admin/consensus/clusteruser/{template}", context
        )
