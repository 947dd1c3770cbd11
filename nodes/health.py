"""Operational endpoints, open without a token (CONTRACT.md, Security
settings; issue 13): GET /api/health/live, GET /api/health/ready (like
etcd's /livez and /readyz) and GET /metrics (Prometheus text)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from consensus import metrics
from consensus.runtime import current_runtime

from .errors import ApiError


class NotReady(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "not_ready"
    default_detail = "This node is not ready to serve."


class OpenView(APIView):
    """No credentials asked for, none looked at: monitors need these."""

    authentication_classes = []
    required_permission = None


class LiveView(OpenView):
    """GET /api/health/live: the process serves requests."""

    def get(self, request):
        runtime = current_runtime()
        return Response(
            {
                "status": "live",
                "id": settings.RAFT_NODE_ID,
                "serving": runtime is not None,
            },
            status=status.HTTP_200_OK,
        )


def readiness(node_status, max_lag: int) -> str | None:
    """Why ``node_status``'s node is not ready, or None: it must be a member
    that knows a leader (or is it), with its applied index within
    ``max_lag`` entries of the commit index it knows, the leader's."""
    if node_status is None:
        return "the node is still starting"
    if node_status.role == "none":
        return "the node is not a member of the cluster (waiting to be added)"
    if node_status.leader is None:
        return f"no leader is known ({node_status.role} in term {node_status.term})"
    lag = node_status.commit_index - node_status.last_applied
    if lag > max_lag:
        return (
            f"applied index {node_status.last_applied} is {lag} entries behind "
            f"commit index {node_status.commit_index} (at most {max_lag})"
        )
    return None


class ReadyView(OpenView):
    """GET /api/health/ready: 200 when this node serves reads and writes
    (readiness() above), else 503 not_ready with the reason."""

    def get(self, request):
        runtime = current_runtime()
        node_status = runtime.status() if runtime is not None else None
        reason = readiness(node_status, settings.RAFT_READY_MAX_LAG)
        if reason is not None:
            raise NotReady(f"Not ready: {reason}.", retry_after_s=1)
        return Response(
            {
                "status": "ready",
                "id": node_status.id,
                "role": node_status.role,
                "leader": node_status.leader,
                "applied_index": node_status.last_applied,
                "commit_index": node_status.commit_index,
            },
            status=status.HTTP_200_OK,
        )


def _serving_status():
    runtime = current_runtime()
    return runtime.status() if runtime is not None else None


def metrics_view(request):
    """GET /metrics: every metric in Prometheus' text format."""
    metrics.register_status(_serving_status)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
