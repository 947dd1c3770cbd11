"""Peer RPC endpoints under /raft/: thin wrappers around the runtime.

A request is stepped by the loop thread and answered only once whatever it
changed is on disk (Raft Figure 2: persist before responding to RPCs).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.response import Response
from rest_framework.views import APIView

from .core.messages import AppendEntries, RequestVote, TimeoutNow
from .errors import CommandTimeout
from .runtime import current_runtime
from .serializers import message_from_dict, message_to_dict
from .tls import verified_peer
from .transport import SECRET_HEADER


class NodeUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "no_leader"
    default_detail = "this node is not serving the Raft protocol right now"


class PeerView(APIView):
    message_class: type = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # With TLS a peer shows a certificate from the cluster's CA (a client
        # without one reaches /api/ only).
        if settings.RAFT_TLS_CA and not verified_peer(request.META):
            raise AuthenticationFailed(
                "peer calls need a client certificate signed by the cluster's CA"
            )
        secret = settings.RAFT_CLUSTER_SECRET
        if secret:
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                raise AuthenticationFailed("missing or wrong cluster secret")

    def get_authenticate_header(self, request):
        # Without it DRF would turn a failed authentication into 403.
        return SECRET_HEADER

    def post(self, request):
        message = message_from_dict(self.message_class, request.data)
        runtime = current_runtime()
        if runtime is None:
            raise NodeUnavailable()
        try:
            reply = runtime.handle_rpc(message)
        except CommandTimeout as exc:
            raise NodeUnavailable(str(exc)) from exc
        body = message_to_dict(reply) if reply is not None else {}
        return Response(body, status=status.HTTP_200_OK)


class AppendEntriesView(PeerView):
    message_class = AppendEntries


class RequestVoteView(PeerView):
    message_class = RequestVote


class TimeoutNowView(PeerView):
    message_class = TimeoutNow
