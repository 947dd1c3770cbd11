"""Peer RPC endpoints (stub; implementation in progress)."""
from rest_framework.views import APIView


class AppendEntriesView(APIView):
    pass


class RequestVoteView(APIView):
    pass


class TimeoutNowView(APIView):
    pass
