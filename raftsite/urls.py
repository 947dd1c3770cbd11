from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView

from nodes.health import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("raft/", include("consensus.urls")),
    path("api/", include("nodes.urls")),
    # Prometheus scrapes it; open like /api/status (no credentials).
    path("metrics", require_GET(metrics_view), name="metrics"),
    # Operators' pages: the dashboard, and the admin's own look (CSS, JS).
    path("dashboard/", include("nodes.dashboard_urls")),
    path("", RedirectView.as_view(pattern_name="dashboard:index")),
    # Each node serves its own static files from the apps' folders: there is
    # no web server in front of gunicorn and no collectstatic step, so the
    # staticfiles finder serves them even with DEBUG off ("insecure" is
    # about speed, not exposure: these are the public admin assets).
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]

# JSON, not HTML, for bad requests (a Host the node does not serve), unknown
# routes and crashes under /api/ and /raft/.
handler400 = "nodes.errors.bad_request"
handler404 = "nodes.errors.page_not_found"
handler500 = "nodes.errors.server_error"
