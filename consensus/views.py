"""Peer RPC endpoints under /raft/: thin wrappers around the runtime.

A request is stepped by the loop thread and answered only once whatever it
changed is on disk (Raft Figure 2: persist before responding to RPCs). A
message is checked in full first (consensus/serializers.py): one that is
malformed, too large or addressed to another server is answered 400 or 413
in the API's error shape and never reaches the loop.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    PermissionDenied,
    ValidationError,
)
from rest_framework.response import Response
from rest_framework.views import APIView

from .core.messages import AppendEntries, RequestVote, TimeoutNow
from .errors import CommandTimeout, NotLeader
from .peer_proof import proof
from .runtime import current_runtime
from .serializers import PeerJSONParser, message_from_dict, message_to_dict
from .tls import names_host, peer_certificate
from .transport import SECRET_HEADER, SECRET_KEY


class NodeUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "no_leader"
    default_detail = "this node is not serving the Raft protocol right now"


def check_peer_certificate(request) -> None:
    """With TLS a peer shows a certificate from the cluster's CA (a client
    without one reaches /api/ only), and one for the host of the ``source``
    it names: the name the other nodes call it by, so a node cannot speak
    for another. A source that is no address is left to validation."""
    certificate = peer_certificate(request.META)
    if certificate is None:
        raise AuthenticationFailed(
            "peer calls need a client certificate signed by the cluster's CA"
        )
    data = request.data
    source = data.get("source") if isinstance(data, dict) else None
    if not isinstance(source, str) or ":" not in source:
        return
    host = source.rpartition(":")[0].strip("[]")
    if host and not names_host(certificate, host):
        raise PermissionDenied(
            f"the client certificate is not for {host}, the source of this call"
        )


def check_dest(dest: str, runtime) -> None:
    """A peer message must be addressed to this server. Its source need not
    be in our configuration: a leader that a lagging member's configuration
    does not list yet is legitimate."""
    if dest != runtime.node_id:
        raise ValidationError(f"dest {dest} is not this server ({runtime.node_id})")


class PeerView(APIView):
    message_class: type = None
    parser_classes = [PeerJSONParser]
    # Peers prove themselves below (secret, certificate), not with the
    # client API's tokens.
    authentication_classes = []
    permission_classes = []
    # Every peer call but the secret's own challenge carries the secret.
    needs_secret = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if settings.RAFT_TLS_CA:
            check_peer_certificate(request)
        secret = settings.RAFT_CLUSTER_SECRET
        if not self.needs_secret:
            return
        if secret:
            given = request.META.get(SECRET_KEY, "")
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
        check_dest(message.dest, runtime)
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


class ProveView(PeerView):
    """POST /raft/prove {"nonce", "source", "dest"}: a leader about to add
    this server checks it holds the cluster secret (consensus/peer_proof.py)
    without sending it. Answers only for this server's own address."""

    needs_secret = False

    def post(self, request):
        data = request.data
        runtime = current_runtime()
        if runtime is None:
            raise NodeUnavailable()
        secret = settings.RAFT_CLUSTER_SECRET
        if not isinstance(data, dict) or not secret:
            raise ValidationError("this server has no cluster secret to prove")
        nonce, source, dest = data.get("nonce"), data.get("source"), data.get("dest")
        if not (
            isinstance(nonce, str)
            and 32 <= len(nonce) <= 128
            and all(c in "0123456789abcdef" for c in nonce)
        ):
            raise ValidationError("nonce must be 32 to 128 lower-case hex digits")
        if not isinstance(source, str) or not 0 < len(source) <= 300:
            raise ValidationError("source must be the leader's address")
        if not isinstance(dest, str):
            raise ValidationError("dest must be this server's address")
        check_dest(dest, runtime)
        return Response(
            {"proof": proof(secret, nonce, source, dest)}, status=status.HTTP_200_OK
        )


class ReadIndexView(PeerView):
    """POST /raft/read_index {"source", "dest"}: a follower's linearizable
    read asks the leader for its read index (consensus/peer_reads.py);
    answered once this leader has confirmed its leadership (§6.4)."""

    def post(self, request):
        data = request.data
        runtime = current_runtime()
        if runtime is None:
            raise NodeUnavailable()
        if not isinstance(data, dict) or not isinstance(data.get("dest"), str):
            raise ValidationError("dest must be this server's address")
        check_dest(data["dest"], runtime)
        try:
            index = runtime.read_index(timeout=settings.RAFT_COMMAND_TIMEOUT_S)
        except (CommandTimeout, NotLeader) as exc:
            raise NodeUnavailable(f"no read index here: {exc}") from exc
        return Response({"index": index}, status=status.HTTP_200_OK)
