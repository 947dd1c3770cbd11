"""POST /api/commands, POST /raft/append_entries and GET /api/kv/<key>
served inline by the worker's main loop (raftsite/inline_worker.py,
nodes/inline_commands.py, consensus/inline_peers.py, nodes/inline_kv.py): the same answers as
the ordinary path (a node started with RAFT_INLINE_REQUESTS=0), for what it
serves and for what it leaves to Django, on kept-alive connections mixing
both, and the view's 504 when a command cannot commit."""

import contextlib
import json
import re
import socket
import time
from urllib.parse import quote

import pytest

from tests.http_message import read_message

from .conftest import running_cluster
from .harness import manage, one_line_failure, wait_until

pytestmark = pytest.mark.cluster

READ_TIMEOUT_S = 2
# A fixed stamp: the Date header is the only one that may differ.
DATE = re.compile(rb"\r\nDate: [^\r]*")


@contextlib.contextmanager
def inline_and_ordinary(tmp_path_factory, name, env):
    """Two one-node clusters alike but for inline serving: on (the
    default) and off."""
    off = {**env, "RAFT_INLINE_REQUESTS": "0"}
    with (
        running_cluster(tmp_path_factory, name, size=1, env=env) as inline,
        running_cluster(tmp_path_factory, f"{name}-off", size=1, env=off) as ordinary,
    ):
        yield inline, ordinary


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    env = {"RAFT_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    with inline_and_ordinary(tmp_path_factory, "inline", env) as both:
        yield both


def exchange(node, raw: bytes, *, timeout=10.0) -> bytes:
    """Send ``raw`` on a new connection; every byte the node answers until
    it has sent one whole response (Content-Length framed)."""
    with socket.create_connection((node.host, node.port), timeout=timeout) as sock:
        sock.sendall(raw.replace(b"{host}", node.address.encode()))
        return read_message(sock)


def normalised(response: bytes, node) -> tuple[bytes, list[bytes], dict]:
    """Status line, sorted header lines (Date fixed, this node's address
    blanked) and JSON body without the entry's index."""
    response = response.replace(node.address.encode(), b"this node")
    head, _, body = DATE.sub(b"\r\nDate: -", response).partition(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    answer = json.loads(body)
    answer.pop("index", None)
    return (
        status,
        sorted(f for f in fields if not f.startswith(b"Content-Length")),
        answer,
    )


def post(body: bytes, *extra: bytes) -> bytes:
    head = [
        b"POST /api/commands HTTP/1.1",
        b"Host: {host}",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


COMMANDS = [
    post(b'{"command": "inline"}'),
    post(b'{"command": "with a pair", "client_id": "c1", "seq": 1}'),
    post(b'{"command": "with a pair", "client_id": "c1", "seq": 1}'),  # repeat
    post(b'{"command": "x"}', b"Accept: */*"),
    post(b'{"command": "x"}', b"Connection: close"),
    # Left to the view: what it says of these is the answer.
    post(b'{"command": 5}'),
    post(b'{"command": "x"'),
    post(b'{"commands": ["a", "b"]}'),
    post(b'{"command": "x"}', b"Accept: text/html"),
    post(b'{"command": "x"}').replace(b"/api/commands", b"/api/commands?format=xml"),
    post(b'{"command": "x"}').replace(b"application/json", b"text/plain"),
    post(b'{"command": "x"}', b"Authorization: Token nonsense"),
    post(b'{"command": "x"}').replace(b"HTTP/1.1", b"HTTP/1.0"),
    # What the inline path's codec (orjson) reads otherwise than the view's
    # (json): refused (NaN, a lone surrogate), or a float past 64 bits.
    post(b'{"command": "x", "n": NaN}'),
    post(b'{"command": "\\ud800"}'),
    post(b'{"command": "x", "client_id": "c2", "seq": 18446744073709551616}'),
    # A follower's forwarding of an open API's command: served inline too.
    post(b'{"command": "forwarded"}', b"X-Raft-Forwarded: 1"),
    post(b'{"command": "x"}', b"X-Raft-Forwarded: 2"),
    post(b'{"command": "x"}', b"X-Raft-Forwarded: 1", b"Cookie: a=b"),
]


@pytest.mark.parametrize("raw", COMMANDS)
def test_the_same_answers_as_the_ordinary_path(clusters, raw):
    inline, ordinary = clusters
    a, b = inline.nodes[0], ordinary.nodes[0]
    assert normalised(exchange(a, raw), a) == normalised(exchange(b, raw), b)


def after_a_command(node, raw: bytes) -> bytes:
    """``raw``'s answer on a connection whose plain command was answered
    just before: with inline serving, the node's loop thread keeps that
    connection and reads ``raw`` itself (raftsite/loop_conns.py)."""
    host = node.address.encode()
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(post(b'{"command": "first"}').replace(b"{host}", host))
        assert read_message(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        sock.sendall(raw.replace(b"{host}", host))
        return read_message(sock)


@pytest.mark.parametrize("raw", COMMANDS)
def test_the_same_answers_on_a_connection_the_loop_thread_keeps(clusters, raw):
    inline, ordinary = clusters
    a, b = inline.nodes[0], ordinary.nodes[0]
    assert normalised(after_a_command(a, raw), a) == normalised(
        after_a_command(b, raw), b
    )


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """Two three-server clusters alike but for inline serving, and a
    follower of each: (inline, ordinary), each (cluster, follower)."""
    env = {"RAFT_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    off = {**env, "RAFT_INLINE_REQUESTS": "0"}
    with (
        running_cluster(tmp_path_factory, "followed", env=env) as inline,
        running_cluster(tmp_path_factory, "followed-off", env=off) as ordinary,
    ):
        yield tuple((c, c.others(c.leader())[0]) for c in (inline, ordinary))


def from_a_follower(cluster, follower, raw: bytes):
    """``raw``'s answer from ``follower``, normalised, the other servers'
    addresses (the leader's among them) alike."""
    response = exchange(follower, raw)
    for node in cluster.others(follower):
        response = response.replace(node.address.encode(), b"another server")
    return normalised(response, follower)


# What a follower sends on to the leader itself (nodes/inline_forwarding.py),
# and what it leaves to the view.
FOLLOWER_COMMANDS = [
    *COMMANDS[:5],
    post(b'{"command": "x", "client_id": "c3", "seq": 2}', b"Accept: */*"),
    *COMMANDS[5:16],
    # Sent on once only: the view's 503.
    post(b'{"command": "x"}', b"X-Raft-Forwarded: 1"),
    post(b'{"command": "x"}', b"Cookie: a=b"),
]


@pytest.mark.parametrize("raw", FOLLOWER_COMMANDS)
def test_a_follower_gives_the_same_answers_as_the_ordinary_path(followed, raw):
    (inline, a), (ordinary, b) = followed
    assert from_a_follower(inline, a, raw) == from_a_follower(ordinary, b, raw)


def test_a_follower_sends_a_plain_command_on_without_the_view(followed):
    (cluster, follower), _ = followed
    before = inline_count(cluster, follower, "/api/commands")
    answer = exchange(follower, post(b'{"command": "sent on"}'))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["forwarded"] is True and body["leader"] == cluster.leader().address
    assert inline_count(cluster, follower, "/api/commands") == before + 1
    # The view's: a batch.
    exchange(follower, post(b'{"commands": ["a"]}'))
    assert inline_count(cluster, follower, "/api/commands") == before + 1


def append_entries(body: bytes) -> bytes:
    return post(body).replace(b"/api/commands", b"/raft/append_entries")


STALE_HEARTBEAT = (
    b'{"term": 0, "source": "127.0.0.1:1", "dest": "{host}", "prev_log_index": 0,'
    b' "prev_log_term": 0, "entries": [], "leader_commit": 0}'
)


@pytest.mark.parametrize(
    "raw",
    [
        append_entries(STALE_HEARTBEAT),
        # Left to the view: malformed, or for another server.
        append_entries(STALE_HEARTBEAT.replace(b'"term": 0', b'"term": -1')),
        append_entries(STALE_HEARTBEAT.replace(b'"{host}"', b'"127.0.0.1:2"')),
        append_entries(b"[]"),
        append_entries(STALE_HEARTBEAT.replace(b'"term": 0', b'"term": NaN')),
        append_entries(
            STALE_HEARTBEAT.replace(b'"term": 0', b'"term": 18446744073709551616')
        ),
    ],
)
def test_peers_get_the_same_answers_as_from_the_view(clusters, raw):
    inline, ordinary = clusters
    a, b = inline.nodes[0], ordinary.nodes[0]
    assert normalised(exchange(a, raw), a) == normalised(exchange(b, raw), b)


def get(target: bytes, *extra: bytes) -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: {host}", *extra]) + (
        b"\r\n\r\n"
    )


@pytest.fixture(scope="module")
def keys(clusters):
    """The same keys, written the same way, in both clusters."""
    for cluster in clusters:
        node = cluster.nodes[0]
        for key, value in (("k1", "v1"), ("a/b", "slash"), ("ключ", "юникод")):
            url = f"{node.base_url}/api/kv/{quote(key, safe='')}"
            response = cluster.http.put(url, json={"value": value}, timeout=10)
            assert response.status_code == 200, response.text
    return clusters


@pytest.mark.parametrize(
    "raw",
    [
        get(b"/api/kv/k1"),
        get(b"/api/kv/k1?consistency=linearizable"),
        get(b"/api/kv/k1?consistency=leader"),
        get(b"/api/kv/k1?consistency=stale"),
        get(b"/api/kv/a%2Fb?consistency=stale"),
        get(b"/api/kv/a/b"),
        get(b"/api/kv/%D0%BA%D0%BB%D1%8E%D1%87"),
        get(b"/api/kv/missing"),
        get(b"/api/kv/missing?consistency=stale"),
        # Left to the view.
        get(b"/api/kv/k1?consistency=eventual"),
        get(b"/api/kv/k1?consistency=stale&x=1"),
        get(b"/api/kv/%FF"),
        get(b"/api/kv/"),
        get(b"/api/kv/k1", b"Accept: text/html"),
        get(b"/api/kv/k1", b"Authorization: Token nonsense"),
    ],
)
def test_reads_get_the_same_answers_as_from_the_view(keys, raw):
    inline, ordinary = keys
    a, b = inline.nodes[0], ordinary.nodes[0]
    assert normalised(exchange(a, raw), a) == normalised(exchange(b, raw), b)


def test_inline_answers_are_the_leaders_commits(clusters):
    inline, _ = clusters
    node = inline.nodes[0]
    answer = exchange(node, post(b'{"command": "counted"}'))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    index = json.loads(answer.partition(b"\r\n\r\n")[2])["index"]
    entries = inline.log(node, index)
    assert entries[0]["command"] == "counted"
    # /metrics counts it by its route, as any client request.
    metrics = inline.get(node, "/metrics").text
    assert re.search(
        r'raft_client_request_seconds_count\{method="POST",route="/api/commands",'
        r'status="2xx"\} [1-9]',
        metrics,
    )


def test_a_kept_alive_connection_mixes_inline_and_ordinary_requests(clusters):
    inline, _ = clusters
    node = inline.nodes[0]
    status = b"GET /api/status HTTP/1.1\r\nHost: {host}\r\n\r\n"
    host = node.address.encode()
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        indexes = []
        for i in range(20):
            raw = post(b'{"command": "k%d"}' % i) if i % 3 else status
            sock.sendall(raw.replace(b"{host}", host))
            response = read_message(sock)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
            body = json.loads(response.partition(b"\r\n\r\n")[2])
            if i % 3:
                indexes.append(body["index"])
        assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
        # Two requests in one write: the ordinary path (gunicorn's parser)
        # answers both, in order.
        sock.sendall(
            (post(b'{"command": "p1"}') + post(b'{"command": "p2"}')).replace(
                b"{host}", host
            )
        )
        first, second = read_message(sock), read_message(sock)
    assert (
        json.loads(first.partition(b"\r\n\r\n")[2])["index"] + 1
        == json.loads(second.partition(b"\r\n\r\n")[2])["index"]
    )


def test_a_body_sent_after_its_head_is_awaited_by_the_main_loop(clusters):
    """http.client sends a body in a send of its own."""
    inline, _ = clusters
    node = inline.nodes[0]
    raw = post(b'{"command": "late"}').replace(b"{host}", node.address.encode())
    before = inline_count(inline, node, "/api/commands")
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(raw[:-5])
        time.sleep(0.2)  # the head alone first: not a synchronisation
        sock.sendall(raw[-5:])
        response = read_message(sock)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
    assert inline_count(inline, node, "/api/commands") == before + 1


def test_a_body_that_never_comes_gets_the_views_400(clusters):
    inline, _ = clusters
    node = inline.nodes[0]
    raw = post(b'{"command": "never"}').replace(b"{host}", node.address.encode())
    started = time.monotonic()
    with socket.create_connection((node.host, node.port), timeout=30) as sock:
        sock.sendall(raw[:-5])
        response = read_message(sock)
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n"), response
    # The main loop waited its read timeout, then a thread its own.
    assert time.monotonic() - started >= READ_TIMEOUT_S


def test_connection_close_is_honoured(clusters):
    inline, _ = clusters
    node = inline.nodes[0]
    raw = post(b'{"command": "bye"}', b"Connection: close")
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(raw.replace(b"{host}", node.address.encode()))
        response = read_message(sock)
        assert b"\r\nConnection: close\r\n" in response
        assert sock.recv(1) == b""  # closed by the node


@pytest.mark.parametrize("inline_requests", ["1", "0"])
def test_a_command_that_cannot_commit_gets_the_views_504(
    tmp_path_factory, inline_requests
):
    env = {"RAFT_COMMAND_TIMEOUT_S": "1", "RAFT_INLINE_REQUESTS": inline_requests}
    with (
        running_cluster(tmp_path_factory, "stalled", size=3, env=env) as cluster,
        contextlib.ExitStack() as stack,
    ):
        leader = cluster.leader()
        host = leader.address.encode()

        def connection():
            address = (leader.host, leader.port)
            return stack.enter_context(socket.create_connection(address, timeout=30))

        # Inline, the loop thread keeps this one, and reads "stuck" itself:
        # the main loop keeps its deadline all the same.
        kept, new = connection(), connection()
        kept.sendall(post(b'{"command": "before"}').replace(b"{host}", host))
        assert read_message(kept).startswith(b"HTTP/1.1 200 OK\r\n")
        for other in cluster.others(leader):
            cluster.pause(other)
        started = time.monotonic()
        for sock in (kept, new):
            sock.sendall(post(b'{"command": "stuck"}').replace(b"{host}", host))
        for sock in (kept, new):
            response = read_message(sock)
            waited = time.monotonic() - started
            status, _, body = response.partition(b"\r\n")
            assert status == b"HTTP/1.1 504 Gateway Timeout", response
            answer = json.loads(response.partition(b"\r\n\r\n")[2])
            assert answer == {
                "error": "timeout",
                "detail": "Not committed within 1 s; the command may or may not "
                "commit.",
            }
            assert waited >= 1.0
        for other in cluster.others(leader):
            cluster.resume(other)
        # The stalled entry commits after all, or is replaced: either way
        # the cluster takes commands again.
        wait_until(
            lambda: cluster.submit(cluster.leader(), "after").status_code == 200,
            20,
            "a command after the stall",
        )


def inline_count(cluster, node, route: str) -> float:
    """raft_inline_requests_total of ``route`` on ``node`` (0 if none yet)."""
    text = cluster.get(node, "/metrics").text
    series = f'raft_inline_requests_total{{route="{route}"}} '
    found = re.search("^" + re.escape(series) + r"(\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_every_server_reads_its_last_write_inline(tmp_path_factory):
    """Linearizable reads on the leader and on followers (which ask the
    leader for the read index inline too) see each write acknowledged
    before them; stale reads answer from each server's own state."""
    with running_cluster(tmp_path_factory, "reads", size=3) as cluster:
        leader = cluster.leader()
        followers = cluster.others(leader)
        before = {
            n.address: inline_count(cluster, n, "/api/kv/{key}") for n in cluster.nodes
        }
        peer_before = inline_count(cluster, leader, "/raft/read_index")
        for i in range(20):
            url = f"{leader.base_url}/api/kv/lin"
            put = cluster.http.put(url, json={"value": f"v{i}"}, timeout=10)
            assert put.status_code == 200, put.text
            for node in cluster.nodes:
                got = cluster.get(node, "/api/kv/lin")
                assert got.status_code == 200, got.text
                assert got.json()["value"] == f"v{i}", node.address
                assert got.json()["applied_index"] >= put.json()["revision"]
        stale = cluster.get(followers[0], "/api/kv/lin", consistency="stale")
        assert stale.status_code == 200 and stale.json()["value"].startswith("v")
        for node in cluster.nodes:
            served = inline_count(cluster, node, "/api/kv/{key}") - before[node.address]
            assert served >= 20, (node.address, served)
        # Each follower's reads asked the leader for an index, inline.
        assert inline_count(cluster, leader, "/raft/read_index") - peer_before >= 40
        # And its AppendEntries were answered inline on the followers.
        for node in followers:
            assert inline_count(cluster, node, "/raft/append_entries") > 0


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """Two one-node clusters with RAFT_AUTH=required, inline serving on and
    off, each with the same users: (inline, ordinary, {name: tokens})."""
    env = {"RAFT_AUTH": "required"}
    with inline_and_ordinary(tmp_path_factory, "auth", env) as (inline, ordinary):
        tokens = {}
        for cluster in (inline, ordinary):
            address = cluster.nodes[0].address
            made = {}
            for name, permissions in (
                ("root", "read,write,admin"),
                ("writer", "write"),
                ("reader", "read"),
            ):
                more = ["--token", made["root"]] if made else []
                result = manage(
                    "createtoken", "--username", name, "--permissions",
                    permissions, "-S", address, *more,
                )  # fmt: skip
                assert result.returncode == 0, one_line_failure(result)
                made[name] = result.stdout.strip().splitlines()[-1]
            tokens[cluster] = made
        for cluster in (inline, ordinary):
            node = cluster.nodes[0]
            put = cluster.http.put(
                f"{node.base_url}/api/kv/k1",
                json={"value": "v1"},
                headers={"Authorization": f"Token {tokens[cluster]['writer']}"},
                timeout=10,
            )
            assert put.status_code == 200, put.text
        yield inline, ordinary, tokens


@pytest.mark.parametrize(
    "raw",
    [
        post(b'{"command": "x"}', b"Authorization: Token {writer}"),
        post(b'{"command": "x"}', b"Authorization: token {root}"),
        get(b"/api/kv/k1", b"Authorization: Token {reader}"),
        get(b"/api/kv/k1?consistency=stale", b"Authorization: Token {root}"),
        # The view's refusals.
        post(b'{"command": "x"}'),
        post(b'{"command": "x"}', b"Authorization: Token {reader}"),
        post(b'{"command": "x"}', b"Authorization: Token nonsense"),
        post(b'{"command": "x"}', b"Authorization: Token"),
        post(b'{"command": "x"}', b"Authorization: Bearer {writer}"),
        get(b"/api/kv/k1"),
        get(b"/api/kv/k1", b"Authorization: Token {writer}"),
    ],
)
def test_tokens_get_the_same_answers_as_from_the_view(secured, raw):
    inline, ordinary, tokens = secured
    answers = []
    for cluster in (inline, ordinary):
        request = raw
        for name, token in tokens[cluster].items():
            request = request.replace(b"{%s}" % name.encode(), token.encode())
        node = cluster.nodes[0]
        answers.append(normalised(exchange(node, request), node))
    assert answers[0] == answers[1]
    if b"{writer}" in raw and b"Token {writer}" in raw and raw.startswith(b"POST"):
        assert answers[0][0] == b"HTTP/1.1 200 OK"


def test_a_token_with_the_permission_is_served_inline(secured):
    inline, _, tokens = secured
    node = inline.nodes[0]
    writer = b"Authorization: Token " + tokens[inline]["writer"].encode()
    before = inline_count(inline, node, "/api/commands")
    answer = exchange(node, post(b'{"command": "by token"}', writer))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert inline_count(inline, node, "/api/commands") == before + 1


SECRET = "inline-test-secret"
VOUCHED_WRITER = (
    b'X-Raft-Caller: {"name":"w","permissions":["write"],"bootstrap":false}'
)
VOUCHED_READER = b'X-Raft-Caller: {"name":"r","permissions":["read"],"bootstrap":false}'
FORWARDED = b"X-Raft-Forwarded: 1"
WITH_SECRET = b"X-Raft-Secret: " + SECRET.encode()


@pytest.fixture(scope="module")
def vouched(tmp_path_factory):
    """Two one-node clusters with RAFT_AUTH=required and a cluster secret,
    inline serving on and off: a follower's forwarding vouches for its
    caller with the secret (nodes/auth.py)."""
    env = {"RAFT_AUTH": "required", "RAFT_CLUSTER_SECRET": SECRET}
    with inline_and_ordinary(tmp_path_factory, "vouched", env) as both:
        yield both


@pytest.mark.parametrize(
    "raw",
    [
        post(b'{"command": "x"}', FORWARDED, WITH_SECRET, VOUCHED_WRITER),
        # The view's: its refusals, and what inline serving leaves to it.
        post(b'{"command": "x"}', FORWARDED, WITH_SECRET, VOUCHED_READER),
        post(b'{"command": "x"}', FORWARDED, b"X-Raft-Secret: wrong", VOUCHED_WRITER),
        post(b'{"command": "x"}', FORWARDED, VOUCHED_WRITER),
        post(b'{"command": "x"}', FORWARDED, WITH_SECRET, b"X-Raft-Caller: {"),
        post(
            b'{"command": "x"}', FORWARDED, WITH_SECRET, b'X-Raft-Caller: {"name":""}'
        ),
        post(b'{"command": "x"}', FORWARDED, WITH_SECRET),
        post(b'{"command": "x"}', WITH_SECRET, VOUCHED_WRITER),
        post(
            b'{"command": "x"}',
            FORWARDED,
            WITH_SECRET,
            VOUCHED_WRITER,
            b"Authorization: Token nonsense",
        ),
    ],
)
def test_forwarded_writes_get_the_same_answers_as_from_the_view(vouched, raw):
    inline, ordinary = vouched
    answers = [normalised(exchange(c.nodes[0], raw), c.nodes[0]) for c in vouched]
    assert answers[0] == answers[1]


def test_a_forwarded_write_with_the_permission_is_served_inline(vouched):
    inline, _ = vouched
    node = inline.nodes[0]
    before = inline_count(inline, node, "/api/commands")
    raw = post(b'{"command": "vouched"}', FORWARDED, WITH_SECRET, VOUCHED_WRITER)
    answer = exchange(node, raw)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert inline_count(inline, node, "/api/commands") == before + 1
    refused = exchange(node, raw.replace(b'"write"', b'"read"'))
    assert refused.startswith(b"HTTP/1.1 403 "), refused
    assert inline_count(inline, node, "/api/commands") == before + 1


def test_a_kept_connection_to_a_leader_that_stepped_down_is_forwarded(
    shared_cluster,
):
    """The loop thread keeps a client's connection on the leader; once
    leadership has moved, its next command goes back to the main loop, and
    the view forwards it to the new leader."""
    cluster = shared_cluster
    leader = cluster.leader()
    target = cluster.others(leader)[0]
    host = leader.address.encode()
    with socket.create_connection((leader.host, leader.port), timeout=30) as sock:

        def command(name: bytes) -> dict:
            sock.sendall(post(b'{"command": "%s"}' % name).replace(b"{host}", host))
            response = read_message(sock)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
            return json.loads(response.partition(b"\r\n\r\n")[2])

        assert command(b"before")["forwarded"] is False
        assert command(b"on the loop")["forwarded"] is False

        def moved() -> bool:
            # Dissertation §3.10: a transfer not done within an election
            # timeout is given up (504, "it may still move"), as when the
            # target's campaign comes late on a busy machine. What this test
            # needs is leadership moved, so it asks until it has.
            r = cluster.post(leader, "/api/leader", {"to": target.address})
            assert r.status_code in (200, 504), r.text
            return r.status_code == 200

        wait_until(moved, 20, f"leadership moved to {target.address}")
        wait_until(
            lambda: cluster.status(leader)["leader"] == target.address,
            10,
            "the old leader to follow the new one",
        )
        after = command(b"after")
    assert after["forwarded"] is True and after["leader"] == target.address
