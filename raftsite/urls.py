from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("raft/", include("consensus.urls")),
    path("api/", include("nodes.urls")),
]

# JSON, not HTML, for unknown routes and crashes under /api/ and /raft/.
handler404 = "nodes.errors.page_not_found"
handler500 = "nodes.errors.server_error"
