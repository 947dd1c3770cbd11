from django.urls import path

from . import snapshot_views, views

urlpatterns = [
    path("append_entries", views.AppendEntriesView.as_view()),
    path("request_vote", views.RequestVoteView.as_view()),
    path("timeout_now", views.TimeoutNowView.as_view()),
    path("prove", views.ProveView.as_view()),
    path("read_index", views.ReadIndexView.as_view()),
    path("install_snapshot", snapshot_views.InstallSnapshotView.as_view()),
]
