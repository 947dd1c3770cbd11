"""The client API, included under /api/ (CONTRACT.md, HTTP API)."""

from django.urls import path

from . import membership_views, views

app_name = "nodes"

urlpatterns = [
    path("commands", views.CommandsView.as_view(), name="commands"),
    path("status", views.StatusView.as_view(), name="status"),
    path("log", views.LogView.as_view(), name="log"),
    path("servers", membership_views.ServersView.as_view(), name="servers"),
    path(
        "servers/<str:address>",
        membership_views.ServerDetailView.as_view(),
        name="server",
    ),
    path("leader", membership_views.LeaderView.as_view(), name="leader"),
]
