"""Client requests' latency for /metrics (raftsite/request_metrics.py and
the WSGI middleware of raftsite/client_limit.py): bounded labels (a route's
template, never its path), peer RPC left out."""

import pytest
from django.urls import resolve, reverse
from prometheus_client import CollectorRegistry, Histogram

from nodes import kv_stats
from raftsite.client_limit import ClientRequestLimit
from raftsite.request_metrics import RequestLatency, route_template

from .test_client_limit import App, call

# Every route of the project, by name, with its parameters and the template
# its latency is labelled with.
ROUTES = [
    ("nodes:commands", {}, "/api/commands"),
    ("nodes:status", {}, "/api/status"),
    ("nodes:live", {}, "/api/health/live"),
    ("nodes:ready", {}, "/api/health/ready"),
    ("nodes:log", {}, "/api/log"),
    ("nodes:servers", {}, "/api/servers"),
    ("nodes:server", {"address": "127.0.0.1:9993"}, "/api/servers/{address}"),
    ("nodes:leader", {}, "/api/leader"),
    ("nodes:tokens", {}, "/api/tokens"),
    ("nodes:token", {"token_id": "abc123"}, "/api/tokens/{token_id}"),
    ("nodes:users", {}, "/api/users"),
    ("nodes:user", {"username": "bob"}, "/api/users/{username}"),
    ("nodes:keys", {}, "/api/kv"),
    ("nodes:key", {"key": "config/db"}, "/api/kv/{key}"),
    ("nodes:watch", {}, "/api/watch"),
    ("nodes:app", {"name": "counter"}, "/api/apps/{name}"),
    ("nodes:backup", {}, "/api/backup"),
    ("nodes:schema", {}, "/api/schema/"),
    ("nodes:docs", {}, "/api/docs/"),
    ("nodes:redoc", {}, "/api/redoc/"),
    ("metrics", {}, "/metrics"),
    ("dashboard:index", {}, "/dashboard/"),
    ("dashboard:data", {}, "/dashboard/data"),
    ("dashboard:commands", {}, "/dashboard/commands"),
    ("admin:index", {}, "/admin/{path}"),
]


@pytest.mark.parametrize("name, kwargs, template", ROUTES)
def test_each_route_is_labelled_with_its_template(name, kwargs, template):
    path = reverse(name, kwargs=kwargs)
    assert route_template(path) == template


def test_every_api_route_is_in_the_table():
    from nodes import urls

    named = {f"nodes:{p.name}" for p in urls.urlpatterns}
    assert named == {name for name, _, _ in ROUTES if name.startswith("nodes:")}


@pytest.mark.parametrize(
    "path, template",
    [
        ("/api/kv/secret%2Fkey/with/slashes", "/api/kv/{key}"),
        ("/api/servers/10.0.0.7:9990", "/api/servers/{address}"),
        ("/api/servers/a/b", "unmatched"),  # <str:> stops at "/": a 404
        ("/api/kv/", "unmatched"),
        ("/api/nothing-here", "unmatched"),
        ("/api/nothing/here", "unmatched"),
        ("/static/admin/css/base.css", "/static/{path}"),
        ("/admin/consensus/logentry/", "/admin/{path}"),
        ("/wp-login.php", "unmatched"),
        ("/", "/"),
    ],
)
def test_a_path_never_becomes_a_label(path, template):
    assert route_template(path) == template
    if path != "/" and template != "unmatched":
        resolve(path)  # Django routes it there too


def histogram():
    return Histogram(
        "raft_client_request_seconds",
        "test",
        ["method", "route", "status"],
        registry=CollectorRegistry(),
        buckets=(0.01, 1),
    )


def observed(hist):
    """{(method, route, status): observations}"""
    found = {}
    for metric in hist.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                labels = sample.labels
                key = (labels["method"], labels["route"], labels["status"])
                found[key] = sample.value
    return found


def test_methods_and_statuses_are_bounded():
    hist = histogram()
    latency = RequestLatency(hist)
    latency.observe("PUT", "/api/kv/a", "200 OK", 0.002)
    latency.observe("PUT", "/api/kv/b", "201 Created", 0.002)
    latency.observe("BREW", "/api/kv/c", "405 Method Not Allowed", 0.001)
    latency.observe("GET", "/api/status", None, 0.001)  # the app raised
    assert observed(hist) == {
        ("PUT", "/api/kv/{key}", "2xx"): 2,
        ("other", "/api/kv/{key}", "4xx"): 1,
        ("GET", "/api/status", "5xx"): 1,
    }


def wsgi_call(app, method, path):
    answer, result = call(app, path, method=method)
    if hasattr(result, "close"):  # as a WSGI server does
        result.close()
    return answer


def test_the_middleware_times_client_requests_and_not_peer_rpc():
    hist = histogram()
    app = ClientRequestLimit(App(), limit=1, latency=RequestLatency(hist))
    wsgi_call(app, "POST", "/api/commands")
    wsgi_call(app, "POST", "/raft/append_entries")
    wsgi_call(app, "GET", "/api/health/ready")
    held = call(app, "/api/kv/k", method="GET")[1]
    assert wsgi_call(app, "GET", "/api/status")["status"].startswith("503")
    # Timed until the answer is written (closed), like the slot.
    assert ("GET", "/api/kv/{key}", "2xx") not in observed(hist)
    held.close()
    assert observed(hist) == {
        ("POST", "/api/commands", "2xx"): 1,
        ("GET", "/api/health/ready", "2xx"): 1,
        ("GET", "/api/status", "5xx"): 1,
        ("GET", "/api/kv/{key}", "2xx"): 1,
    }


def test_a_view_that_raises_is_counted_as_a_5xx():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    hist = histogram()
    app = ClientRequestLimit(broken, limit=1, latency=RequestLatency(hist))
    with pytest.raises(RuntimeError):
        app({"PATH_INFO": "/api/log", "REQUEST_METHOD": "GET"}, None)
    assert observed(hist) == {("GET", "/api/log", "5xx"): 1}


def test_key_value_reads_are_counted_by_consistency():
    def reads(level):
        return kv_stats.KV_READS.labels(level)._value.get()

    before = {level: reads(level) for level in ("linearizable", "leader", "stale")}
    kv_stats.served("stale")
    kv_stats.served("stale")
    kv_stats.served("leader")
    assert reads("stale") == before["stale"] + 2
    assert reads("leader") == before["leader"] + 1
    assert reads("linearizable") == before["linearizable"]
