from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("raft/", include("consensus.urls")),
    path("api/", include("nodes.urls")),
]
