"""500 slow client connections on a follower starve neither its peer RPC nor
the cluster: the leader keeps its term and writes keep committing.

The third node is stopped first, so every commit and the leader's check
quorum need the attacked follower: were its /raft/ requests starved, the
leader would step down within an election timeout.
"""

import os
import resource
import selectors
import socket
import threading
import time

import pytest
import requests

from .conftest import running_cluster

# A 15 s attack, about 20 s with the cluster's start on 2 cores: make slow
# (RAFT_SLOW=1), not the default run.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ATTACK_S = float(os.environ.get("RAFT_STARVE_ATTACK_S", "15"))
# 500 connections in all: heads trickled a byte at a time, complete heads
# whose body never comes (they wait in a view), and connections that never
# send a byte.
KINDS = {"slowloris": 200, "stalled_body": 150, "idle": 150}
TRICKLE_INTERVAL_S = 0.25
READ_TIMEOUT_S = 3

SLOWLORIS_HEAD = b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Trickle: "
STALLED_BODY_HEAD = (
    b"POST /api/commands HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
)


class SlowClients:
    """Holds ``KINDS`` connections open against one address from one thread.

    A connection the server closes (or answers) is opened again on the next
    round, as an attacker would, so the pressure stays at 500 throughout.
    """

    def __init__(self, host, port, kinds):
        self.address = (host, port)
        self.kinds = kinds
        self.selector = selectors.DefaultSelector()
        self.sockets = {}  # socket -> kind
        self.closed_by_server = 0
        self.overloaded = 0
        self.answered = 0
        # The fewest connections open at the end of a round (after reopening).
        self.min_held = sum(kinds.values())
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind):
        s = socket.create_connection(self.address, timeout=5)
        s.setblocking(False)
        if kind == "slowloris":
            s.send(SLOWLORIS_HEAD)
        elif kind == "stalled_body":
            s.send(STALLED_BODY_HEAD)
        self.sockets[s] = kind
        self.selector.register(s, selectors.EVENT_READ, kind)

    def _drop(self, s):
        self.selector.unregister(s)
        kind = self.sockets.pop(s)
        s.close()
        return kind

    def open_all(self):
        for kind, count in self.kinds.items():
            for _ in range(count):
                self._open(kind)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            round_ends = time.monotonic() + TRICKLE_INTERVAL_S
            to_reopen = []
            while (left := round_ends - time.monotonic()) > 0:
                for key, _ in self.selector.select(left):
                    s = key.fileobj
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data.startswith(b"HTTP/1.1 503") and b"overloaded" in data:
                        self.overloaded += 1
                    elif data:
                        self.answered += 1
                    else:
                        self.closed_by_server += 1
                    to_reopen.append(self._drop(s))
            for s, kind in list(self.sockets.items()):
                if kind == "slowloris":
                    try:
                        s.send(b"a")
                    except OSError:
                        self.closed_by_server += 1
                        to_reopen.append(self._drop(s))
            for kind in to_reopen:
                try:
                    self._open(kind)
                except OSError:
                    pass
            self.min_held = min(self.min_held, len(self.sockets))

    def close(self):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        for s in list(self.sockets):
            self._drop(s)
        self.selector.close()


def _raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture
def cluster(tmp_path_factory):
    # A short read timeout so that the slow connections are cut, and opened
    # again, several times within the attack.
    env = {"RAFT_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    with running_cluster(tmp_path_factory, "starve", env=env) as cluster:
        yield cluster


def test_500_slow_clients_on_a_follower_starve_no_peer(cluster):
    _raise_fd_limit(4096)
    leader = cluster.leader()
    target, spare = cluster.others(leader)
    cluster.stop(spare)
    term = cluster.status(leader)["term"]
    cluster.write(leader, "before-attack")

    attack = SlowClients(target.host, target.port, KINDS)
    attack.open_all()
    writes, overloaded_seen, max_contact_s = 0, 0, 0.0
    try:
        deadline = time.monotonic() + ATTACK_S
        while time.monotonic() < deadline:
            # Every write needs the attacked follower's AppendEntries reply.
            cluster.write(leader, f"under-attack-{writes}")
            writes += 1
            status = cluster.status(leader)
            assert (status["role"], status["term"]) == ("leader", term), status
            servers = cluster.get(leader, "/api/servers").json()["servers"]
            for server in servers:
                if server["id"] == target.address:
                    max_contact_s = max(max_contact_s, server["last_contact_s"])
            # A client of the attacked follower is answered at once: served,
            # or told to come back later, never left waiting.
            try:
                r = cluster.get(target, "/api/status")
            except requests.RequestException as exc:
                pytest.fail(f"the attacked follower left a client waiting: {exc}")
            if r.status_code == 503:
                assert r.json()["error"] == "overloaded", r.text
                assert int(r.headers["Retry-After"]) >= 1
                overloaded_seen += 1
            else:
                assert r.status_code == 200, r.text
    finally:
        attack.close()

    print(
        f"\n{writes} writes committed in {ATTACK_S:.0f} s under attack; "
        f"at least {attack.min_held} slow connections open throughout; "
        f"{attack.closed_by_server} closed by the follower, "
        f"{attack.overloaded} answered 503 overloaded, {attack.answered} other "
        f"answers; our status calls got {overloaded_seen} 503s; "
        f"leader's last contact with the follower at most {max_contact_s:.2f} s"
    )
    assert attack.min_held >= 0.95 * sum(KINDS.values())
    assert writes >= ATTACK_S  # at least one a second, each through the follower
    assert attack.closed_by_server > 0, "no read timeout cut a slow connection"
    status = cluster.status(leader)
    assert (status["role"], status["term"]) == ("leader", term), status
    index = cluster.write(leader, "after-attack")["index"]
    cluster.wait_applied(index, [leader, target])
