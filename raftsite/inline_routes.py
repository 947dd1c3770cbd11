"""Which requests the worker serves inline (raftsite/inline_worker.py), and
what it counts of them for /metrics, as ClientRequestLimit does for the rest.

Settings: RAFT_INLINE_REQUESTS (default on) turns inline serving off when
"0", for comparison or if it ever misbehaves; every request then takes the
ordinary path.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from rest_framework.renderers import JSONRenderer

from consensus.metrics import CLIENT_REQUEST_SECONDS, CLIENT_REQUESTS, INLINE_REQUESTS

from .client_limit import PEER_PREFIX, ClientRequestLimit
from .inline_http import Responses, Route, Routes
from .request_metrics import RequestLatency

# The headers Django's middleware (SecurityMiddleware, XFrameOptionsMiddleware)
# and DRF's APIView add to these routes' answers.
SECURITY_HEADERS = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]


def inline_setup(worker) -> None:
    """Give ``worker`` its inline routes, unless the setting is off or
    the worker serves another WSGI application than this project's."""
    if not apps.ready or not settings.RAFT_INLINE_REQUESTS:
        return
    from consensus.inline_peers import append_entries_handler, read_index_handler
    from nodes.inline_commands import serve_command
    from nodes.inline_kv import PREFIX, serve_read

    post = Responses([("Allow", "POST, OPTIONS"), *SECURITY_HEADERS])
    get = Responses([("Allow", "GET, PUT, DELETE, HEAD, OPTIONS"), *SECURITY_HEADERS])
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S
    routes = Routes()
    routes.add(
        "/api/commands",
        Route("/api/commands", serve_command, post, loop_kept=True),
    )
    routes.add(PREFIX, Route("/api/kv/{key}", serve_read, get), prefix=True)
    # The views' 503s when the loop does not answer in time (PeerView,
    # ReadIndexView).
    stalled = _unavailable("the node did not process the request in time")
    routes.add(
        "/raft/append_entries",
        Route(
            "/raft/append_entries",
            append_entries_handler(stalled),
            post,
            loop_kept=True,
        ),
    )
    no_index = _unavailable(
        f"no read index here: leadership not confirmed within {timeout_s:g} s"
    )
    routes.add(
        "/raft/read_index",
        Route("/raft/read_index", read_index_handler(no_index), post),
    )
    worker.inline_routes = routes
    if isinstance(worker.wsgi, ClientRequestLimit):
        worker.client_limit = worker.wsgi
    worker.inline_metrics = InlineMetrics()


def _unavailable(detail: str) -> bytes:
    from consensus.views import NodeUnavailable
    from nodes.errors import error_answer

    return JSONRenderer().render(error_answer(NodeUnavailable(detail)).body)


class InlineMetrics:
    """Client requests served inline, counted as ClientRequestLimit counts
    the others (in flight, latency by route); peer RPC is not counted."""

    def __init__(self):
        self._latency = RequestLatency(CLIENT_REQUEST_SECONDS)
        # Route name -> its counter (labels() takes a lock and builds a key).
        self._served = {}

    def taken(self, request) -> None:
        if not request.path.startswith(PEER_PREFIX):
            CLIENT_REQUESTS.inc()

    def answered(self, request, status: int, seconds: float) -> None:
        name = request.route.name
        served = self._served.get(name)
        if served is None:
            served = self._served[name] = INLINE_REQUESTS.labels(name)
        served.inc()
        if not request.path.startswith(PEER_PREFIX):
            CLIENT_REQUESTS.dec()
            self._latency.observe(request.method, request.path, str(status), seconds)

    def declined(self, request) -> None:
        # The ordinary path counts it from here.
        if not request.path.startswith(PEER_PREFIX):
            CLIENT_REQUESTS.dec()
