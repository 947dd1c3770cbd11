"""A cluster on TLS (runnode --tls-cert/--tls-key/--tls-ca), with
certificates made by openssl for this test: it elects a leader, forwards
writes and streams a snapshot over HTTPS, the CLI verifies with --ca, and a
peer without a certificate from the cluster's CA is refused."""

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from raftclient import Client, Unreachable
from scripts.tls_certs import make_ca, make_cert
from tests.tls_helpers import skip_without_openssl

from .harness import ROOT, STATUS_TIMEOUT, LocalCluster, one_line_failure

pytestmark = pytest.mark.cluster

INITIAL = 3  # nodes 0-2 form the cluster; node 3 has a certificate of another CA
ENTRIES = 30  # RAFT_SNAPSHOT_ENTRIES
TRAILING = 5  # RAFT_SNAPSHOT_TRAILING
HIGH_TERM = 10_000


class TLSCluster(LocalCluster):
    """A LocalCluster whose nodes serve HTTPS; ``files[i]`` is node i's
    (certificate, key, CA)."""

    def __init__(self, size, *, files, ca, **kwargs):
        super().__init__(size, **kwargs)
        self.files = files
        # REQUESTS_CA_BUNDLE in the environment would replace the CA.
        self.http.trust_env = False
        self.http.verify = str(ca)
        for node in self.nodes:
            node.scheme = "https"

    def live_nodes(self):
        # The node of another CA is no member, and the harness cannot read it.
        return [n for n in super().live_nodes() if n.index < INITIAL]

    def argv(self, node):
        cert, key, ca = self.files[node.index]
        return [
            *super().argv(node),
            "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca),
        ]  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    skip_without_openssl()
    base = tmp_path_factory.mktemp("pki")
    ca = make_ca(base / "cluster", common_name="cluster CA")
    node = make_cert(base / "cluster", ca, "node", ips=("127.0.0.1",))
    elsewhere = make_cert(base / "cluster", ca, "elsewhere", ips=("127.0.0.2",))
    other_ca = make_ca(base / "other", common_name="another CA")
    other = make_cert(base / "other", other_ca, "node", ips=("127.0.0.1",))
    return {
        "ca": ca[0],
        "node": node,
        "elsewhere": elsewhere,
        "other_ca": other_ca[0],
        "other": other,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pki):
    ca = pki["ca"]
    files = [(*pki["node"], ca)] * INITIAL + [(*pki["other"], ca)]
    env = {
        "RAFT_SNAPSHOT_ENTRIES": str(ENTRIES),
        "RAFT_SNAPSHOT_TRAILING": str(TRAILING),
        # The node of another CA cannot catch up: fail the add soon.
        "RAFT_CATCHUP_TIMEOUT_S": "4",
    }
    cluster = TLSCluster(
        INITIAL + 1,
        files=files,
        ca=ca,
        base_dir=tmp_path_factory.mktemp("tls"),
        env=env,
        members=INITIAL,
    )
    try:
        cluster.start_members()
        yield cluster
    finally:
        cluster.close()


def manage(*args, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def terms(cluster) -> list[int]:
    return [cluster.status(n)["term"] for n in cluster.nodes[:INITIAL]]


def test_a_tls_cluster_elects_and_commits_forwarded_writes(cluster):
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    answer = cluster.write(follower, "over-tls")
    assert answer["forwarded"] is True
    assert answer["leader"] == leader.address
    cluster.wait_applied(answer["index"], cluster.nodes[:INITIAL])
    for node in cluster.nodes[:INITIAL]:
        entry = cluster.log(node, start=answer["index"])[0]
        assert entry["command"] == "over-tls"


def test_the_cli_speaks_https_and_verifies_with_ca(cluster, pki):
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    done = manage("clientcommand", "-m", "cli-tls", "-S", follower.address,
                  "--ca", str(pki["ca"]))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"forwarded to leader {leader.address}" in done.stdout
    # RAFT_CA stands for --ca.
    status = manage("status", "-S", follower.address, env={"RAFT_CA": str(pki["ca"])})
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"leader:         {leader.address}" in status.stdout

    # A server whose certificate the given CA did not sign is refused,
    # before anything is sent.
    wrong = manage("clientcommand", "-m", "never", "-S", follower.address,
                   "--ca", str(pki["other_ca"]))  # fmt: skip
    line = one_line_failure(wrong)
    assert f"cannot reach {follower.address}: TLS: certificate verify failed" in line
    # Plain HTTP to a node on TLS gets no answer.
    plain = manage("status", "-S", follower.address, "--timeout", "3")
    assert "if it serves HTTPS, give --ca" in one_line_failure(plain)
    entries = [e["command"] for e in cluster.log(leader)]
    assert "cli-tls" in entries and "never" not in entries


def test_the_python_client_speaks_https_with_ca(cluster, pki):
    servers = [node.address for node in cluster.nodes[:INITIAL]]
    key = f"tls/{uuid.uuid4().hex}"
    with Client(servers, ca=str(pki["ca"]), timeout=15) as client:
        revision = client.put(key, "x").revision
        assert client.get(key).revision == revision
    with Client(servers, ca=str(pki["other_ca"]), timeout=15) as wrong:
        with pytest.raises(Unreachable) as raised:
            wrong.get(key)
    assert "TLS: certificate verify failed" in str(raised.value)


def test_plain_http_to_a_tls_node_fails(cluster):
    before = terms(cluster)
    for node in cluster.nodes[:INITIAL]:
        url = f"http://{node.address}"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/api/status", timeout=STATUS_TIMEOUT)
        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"{url}/raft/timeout_now",
                json={"term": HIGH_TERM, "source": "127.0.0.1:1", "dest": node.address},
                timeout=STATUS_TIMEOUT,
            )
    assert max(terms(cluster)) <= max(before) < HIGH_TERM


def test_a_peer_call_without_a_client_certificate_gets_401(cluster, pki):
    before = terms(cluster)
    leader = cluster.leader()
    for node in cluster.nodes[:INITIAL]:
        r = cluster.post(
            node,
            "/raft/request_vote",
            {
                "term": HIGH_TERM,
                "source": "127.0.0.1:1",
                "dest": node.address,
                "last_log_index": 10**9,
                "last_log_term": HIGH_TERM,
            },
        )
        assert r.status_code == 401, (node.address, r.status_code, r.text)
        assert r.json()["error"] == "unauthorized"
    assert max(terms(cluster)) <= max(before) < HIGH_TERM
    assert cluster.leader() == leader


def test_a_peer_cannot_speak_for_a_host_its_certificate_does_not_name(cluster, pki):
    """A certificate of the cluster's CA for 127.0.0.2 cannot send a call
    whose source is 127.0.0.1: 403, nothing changed."""
    before = terms(cluster)
    for node in cluster.nodes[:INITIAL]:
        r = requests.post(
            f"{node.base_url}/raft/request_vote",
            json={
                "term": HIGH_TERM,
                "source": "127.0.0.1:1",
                "dest": node.address,
                "last_log_index": 10**9,
                "last_log_term": HIGH_TERM,
            },
            cert=tuple(map(str, pki["elsewhere"])),
            verify=str(pki["ca"]),
            timeout=STATUS_TIMEOUT,
        )
        assert r.status_code == 403, (node.address, r.status_code, r.text)
        assert r.json()["error"] == "forbidden"
    assert max(terms(cluster)) <= max(before) < HIGH_TERM


def test_a_peer_with_a_certificate_of_another_ca_is_refused(cluster, pki):
    """The TLS handshake fails: the node asks for a client certificate and
    refuses one its CA did not sign, on /raft/ and /api/ alike."""
    before = terms(cluster)
    for node in cluster.nodes[:INITIAL]:
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(
                f"{node.base_url}/raft/timeout_now",
                json={"term": HIGH_TERM, "source": "127.0.0.1:1", "dest": node.address},
                cert=tuple(map(str, pki["other"])),
                verify=str(pki["ca"]),
                timeout=STATUS_TIMEOUT,
            )
    assert max(terms(cluster)) <= max(before) < HIGH_TERM


def test_a_server_with_a_certificate_of_another_ca_cannot_join(cluster, pki):
    """The leader verifies a server being added like any peer: one whose
    certificate is not from the cluster's CA gets no entry, and the add
    fails with 422 catchup_failed."""
    intruder = cluster.nodes[INITIAL]
    cluster.start_node(intruder)

    def intruder_status():
        r = requests.get(
            f"{intruder.base_url}/api/status",
            verify=str(pki["other_ca"]),
            timeout=STATUS_TIMEOUT,
        )
        r.raise_for_status()
        return r.json()

    try:
        cluster.wait_until(intruder_status, 20, "the intruder serving")
        leader = cluster.leader()
        added = manage("addserver", intruder.address, "-S", leader.address,
                       "--ca", str(pki["ca"]), "--timeout", "30")  # fmt: skip
        line = one_line_failure(added)
        assert "422 catchup_failed" in line, line
        # The leader says why, once.
        said = [
            line
            for line in cluster.stderr_lines(leader)
            if f"TLS with {intruder.address} failed" in line
        ]
        assert len(said) == 1, cluster.stderr_lines(leader)
        assert "certificate verify failed" in said[0]
        status = intruder_status()
        assert status["last_log_index"] == 0, status
        assert status["role"] == "none", status
        servers = cluster.status(cluster.leader())["servers"]
        assert sorted(s["id"] for s in servers) == sorted(
            n.address for n in cluster.nodes[:INITIAL]
        )
    finally:
        cluster.stop(intruder)


def test_the_dashboard_reads_the_other_nodes_over_tls(cluster):
    """A follower's dashboard fetches every member's status, and the
    leader's view of the servers, over HTTPS verified by the CA."""
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    password = uuid.uuid4().hex
    made = manage("createadmin", "--data-dir", str(follower.data_dir),
                  "--username", "ops", "--password", password)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    base = follower.base_url
    with requests.Session() as http:
        http.trust_env = False
        http.verify = cluster.http.verify
        http.get(f"{base}/admin/login/", timeout=10).raise_for_status()
        csrf = next(c for c in http.cookies if c.name.startswith("raft_csrf_"))
        assert csrf.secure, "the CSRF cookie is not marked Secure on TLS"
        login = http.post(
            f"{base}/admin/login/?next=/admin/",
            data={
                "username": "ops",
                "password": password,
                "next": "/admin/",
                "csrfmiddlewaretoken": csrf.value,
            },
            # Django checks the Referer of an HTTPS form, as browsers send it.
            headers={"Referer": f"{base}/admin/login/"},
            timeout=10,
        )
        assert login.url == f"{base}/admin/", login.status_code
        data = http.get(f"{base}/dashboard/data", timeout=10).json()
    rows = {row["id"]: row for row in data["servers"]}
    assert set(rows) == {n.address for n in cluster.nodes[:INITIAL]}
    assert all(row["reachable"] for row in rows.values()), rows
    assert data["progress_from"] == leader.address, data
    assert rows[follower.address]["match_index"] is not None


def test_a_snapshot_streams_over_tls(cluster):
    """A follower that was down while the leader compacted its log gets
    the leader's snapshot, over HTTPS, and then the entries after it."""
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    cluster.stop(follower)
    commands = [f"snap-{i}-{uuid.uuid4().hex[:6]}" for i in range(3 * ENTRIES)]
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda c: cluster.write(leader, c), commands))
    last = max(w["index"] for w in written)
    cluster.wait_until(
        lambda: cluster.get(leader, "/api/log").json()["first_index"] > 1,
        20,
        "the leader compacted its log",
    )
    cluster.start_node(follower)
    cluster.wait_applied(last, [follower], timeout=30)
    assert any(
        line.startswith("Restored snapshot through")
        for line in cluster.events(follower)
    ), cluster.events(follower)
    # And the entries after it, from the log.
    after = cluster.write(leader, "after-snapshot")
    cluster.wait_applied(after["index"], [follower])
    assert cluster.log(follower, start=after["index"])[0]["command"] == (
        "after-snapshot"
    )
