"""The admin's key browser (issue 12): the key-value map as this node has
applied it, searched by prefix, each key linked to the log entry that last
wrote it; and a form that puts or deletes a key through consensus (the
API's own path, in process, recorded as the admin login's write).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from consensus import kv
from consensus.admin import ReadOnlyAdmin
from consensus.models import KeyValue
from consensus.runtime import current_runtime

from . import kv_views
from .auth import site_caller
from .forwarding import Write, answer_in_process, process_forwarder
from .user_admin import error_text


class PutKeyForm(forms.Form):
    key = forms.CharField(max_length=512, strip=False)
    value = forms.CharField(widget=forms.Textarea, required=False, strip=False)
    prev_revision = forms.IntegerField(
        required=False,
        min_value=0,
        help_text="Write only if the key's revision is this (0: only if absent).",
    )

    def clean_key(self):
        try:
            return kv.check_key(self.cleaned_data["key"])
        except kv.InvalidKey as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_value(self):
        try:
            return kv.check_value(self.cleaned_data["value"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(KeyValue)
class KeyValueAdmin(ReadOnlyAdmin):
    list_display = ["key", "short_value", "revision_link"]
    ordering = ["key"]
    search_fields = ["key"]
    search_help_text = "Keys starting with this prefix."
    fields = ["key", "value", "revision_link"]
    readonly_fields = ["revision_link"]
    change_list_template = "admin/consensus/keyvalue/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        # A prefix, in the API's byte order: not Django's "contains".
        if search_term:
            queryset = queryset.filter(key__startswith=search_term)
        return queryset, False

    @admin.display(description="value")
    def short_value(self, item):
        return Truncator(item.value).chars(80)

    @admin.display(description="revision", ordering="revision")
    def revision_link(self, item):
        try:
            url = reverse("admin:consensus_logentry_change", args=[item.revision])
        except NoReverseMatch:
            return item.revision
        return format_html('<a href="{}">{}</a>', url, item.revision)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("put/", wrap(self.put_view), name="consensus_keyvalue_put"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_write": may_write(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def put_view(self, request):
        if not may_write(request):
            raise PermissionDenied
        form = PutKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            delete = "delete" in request.POST
            body = write_key(request, data["key"], data["value"], data["prev_revision"],
                             delete=delete)  # fmt: skip
            if body is not None:
                verb = "Deleted" if delete else "Put"
                messages.success(
                    request,
                    f"{verb} {data['key']!r}: revision {body['revision']}"
                    + (", forwarded to the leader" if body.get("forwarded") else ""),
                )
                return redirect(reverse("admin:consensus_keyvalue_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Put or delete a key",
            "form": form,
        }
        return TemplateResponse(request, "admin/consensus/keyvalue/put.html", context)


def may_write(request) -> bool:
    """Writing keys asks for the key model's change permission (superusers
    have it): view alone browses."""
    return request.user.has_perm("consensus.change_keyvalue")


def write_key(request, key, value, prev, *, delete=False) -> dict | None:
    runtime = current_runtime()
    if runtime is None:
        messages.error(request, "The node is not running in this process.")
        return None
    caller = site_caller(request.user.get_username())
    if delete:
        operation = kv.delete_op(key, prev)
        query = "" if prev is None else f"?prev_revision={prev}"
        write = Write("DELETE", kv_views.key_path(key) + query, None, 10.0)
    else:
        operation = kv.put_op(key, value, prev)
        body = {"value": value}
        if prev is not None:
            body["prev_revision"] = prev
        write = Write("PUT", kv_views.key_path(key), body, 10.0)
    answer = answer_in_process(
        lambda: kv_views.submit_kv(
            runtime, process_forwarder(), key, operation, write, caller,
            value=None if delete else value,
        )
    )  # fmt: skip
    if answer.status == 200 and answer.body is not None:
        return answer.body
    messages.error(request, f"Could not write {key!r}: {error_text(answer)}")
    return None
