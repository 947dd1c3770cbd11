from django.urls import path

from . import views

urlpatterns = [
    path("append_entries", views.AppendEntriesView.as_view()),
    path("request_vote", views.RequestVoteView.as_view()),
    path("timeout_now", views.TimeoutNowView.as_view()),
]
