"""A follower forwards a ``leader`` read of a key to the leader at the
key's own path (request.path is decoded; the forwarded one must not be)."""

from dataclasses import replace
from urllib.parse import quote

from .stub import Reply


def test_a_leader_read_is_forwarded_with_the_key_encoded(
    api, runtime, stub_server, app_forwarder
):
    key = "a/ä ?&%41#b"
    leader = stub_server(
        Reply(200, {"key": key, "value": "v", "revision": 3, "applied_index": 4})
    )
    runtime.node_status = replace(
        runtime.node_status, role="follower", leader=leader.address
    )
    response = api.get("/api/kv/" + quote(key, safe=""), {"consistency": "leader"})
    assert response.status_code == 200, response.content
    [received] = leader.received
    path, _, query = received.path.partition("?")
    assert path == "/api/kv/" + quote(key, safe="/")
    assert query == "consistency=leader"
