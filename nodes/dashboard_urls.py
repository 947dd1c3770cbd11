"""The operators' dashboard, included under /dashboard/ (login required)."""

from django.urls import path

from . import dashboard

app_name = "dashboard"

urlpatterns = [
    path("", dashboard.dashboard, name="index"),
    path("data", dashboard.dashboard_data, name="data"),
    path("commands", dashboard.send_command, name="commands"),
]
