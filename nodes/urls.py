"""The client API, included under /api/ (CONTRACT.md, HTTP API)."""

from django.urls import path, re_path

from . import (
    app_views,
    backup_views,
    health,
    kv_views,
    membership_views,
    schema,
    token_views,
    views,
)

app_name = "nodes"

# The OpenAPI description of the views below (nodes/schema.py).
schema.document_views()

urlpatterns = [
    path("commands", views.CommandsView.as_view(), name="commands"),
    path("status", views.StatusView.as_view(), name="status"),
    path("health/live", health.LiveView.as_view(), name="live"),
    path("health/ready", health.ReadyView.as_view(), name="ready"),
    path("log", views.LogView.as_view(), name="log"),
    path("servers", membership_views.ServersView.as_view(), name="servers"),
    path(
        "servers/<str:address>",
        membership_views.ServerDetailView.as_view(),
        name="server",
    ),
    path("leader", membership_views.LeaderView.as_view(), name="leader"),
    path("tokens", token_views.TokensView.as_view(), name="tokens"),
    path("tokens/<str:token_id>", token_views.TokenDetailView.as_view(), name="token"),
    path("users", token_views.UsersView.as_view(), name="users"),
    path("kv", kv_views.KeysView.as_view(), name="keys"),
    # A key may hold "/" (percent-encoded or not): the rest of the path.
    # Any character, a newline included (a key is any UTF-8 text).
    re_path(r"^kv/(?P<key>[\s\S]+)$", kv_views.KeyView.as_view(), name="key"),
    path("watch", kv_views.WatchView.as_view(), name="watch"),
    path("apps/<str:name>", app_views.AppView.as_view(), name="app"),
    path("backup", backup_views.BackupView.as_view(), name="backup"),
    path("users/<str:username>", token_views.UserDetailView.as_view(), name="user"),
    # OpenAPI: the document, and pages for people (open, like /api/status).
    path("schema/", schema.SchemaView.as_view(), name="schema"),
    path("docs/", schema.DocsView.as_view(url_name="nodes:schema"), name="docs"),
    path("redoc/", schema.RedocView.as_view(url_name="nodes:schema"), name="redoc"),
]
