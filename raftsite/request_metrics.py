"""Client requests' latency for /metrics, observed by the WSGI middleware
(raftsite/client_limit.py). No Django: it runs before it.

Labels are bounded: the route *template* of a path, never the path (a key,
an address or a username would make a series per value), the method among
HTTP's usual ones, and the status class.
"""

from __future__ import annotations

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# nodes/urls.py, raftsite/urls.py and nodes/dashboard_urls.py, as routes
# with no parameter (tests/nodes/test_request_metrics.py checks them).
ROUTES = frozenset(
    {
        "/",
        "/metrics",
        "/api/commands",
        "/api/status",
        "/api/health/live",
        "/api/health/ready",
        "/api/log",
        "/api/servers",
        "/api/leader",
        "/api/tokens",
        "/api/users",
        "/api/kv",
        "/api/watch",
        "/api/backup",
        "/api/schema/",
        "/api/docs/",
        "/api/redoc/",
        "/dashboard/",
        "/dashboard/data",
        "/dashboard/commands",
    }
)
# Prefix -> (template, whether the parameter may hold "/"): Django's <str:>
# stops at "/", the key's pattern does not.
PARAMETERISED = {
    "/api/kv/": ("/api/kv/{key}", True),
    "/api/servers/": ("/api/servers/{address}", False),
    "/api/tokens/": ("/api/tokens/{token_id}", False),
    "/api/users/": ("/api/users/{username}", False),
    "/api/apps/": ("/api/apps/{name}", False),
}
SECTIONS = {"/admin/": "/admin/{path}", "/static/": "/static/{path}"}
UNMATCHED = "unmatched"


def route_template(path: str) -> str:
    """The route ``path`` takes, as a template: ``/api/kv/{key}``."""
    if path in ROUTES:
        return path
    if path.startswith("/api/"):
        slash = path.find("/", 5)
        if slash < 0 or slash + 1 == len(path):
            return UNMATCHED
        found = PARAMETERISED.get(path[: slash + 1])
        if found is None:
            return UNMATCHED
        template, any_text = found
        if not any_text and "/" in path[slash + 1 :]:
            return UNMATCHED
        return template
    for prefix, template in SECTIONS.items():
        if path.startswith(prefix):
            return template
    return UNMATCHED


class RequestLatency:
    """``observe(method, path, status, seconds)`` into a histogram labelled
    method, route and status (``2xx``). Each label set's child is looked
    up once and kept: prometheus-client's ``labels()`` costs more than the
    observation itself, on the hottest paths there are."""

    def __init__(self, histogram):
        self._histogram = histogram
        # (method, route, status class) -> child; bounded by the labels'.
        self._children: dict[tuple[str, str, str], object] = {}

    def observe(self, method: str, path: str, status: str | None, seconds: float):
        key = (
            method if method in METHODS else "other",
            route_template(path),
            status[0] + "xx" if status else "5xx",
        )
        child = self._children.get(key)
        if child is None:
            # Two threads may both get here: labels() gives both one child.
            child = self._children[key] = self._histogram.labels(*key)
        child.observe(seconds)
