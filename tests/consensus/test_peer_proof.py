"""A server being added proves it holds the cluster secret, which never
travels in the challenge (consensus/peer_proof.py, POST /raft/prove)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from consensus.peer_proof import NotProven, ask_proof, proof
from consensus.transport import SECRET_HEADER

from .test_peer_views import A, B, runtime  # noqa: F401 - the fixture

SECRET = "a-cluster-secret-of-some-length"
NONCE = "ab" * 32


def prove(body):
    return APIClient().post("/raft/prove", body, format="json")


def test_a_member_proves_for_its_own_address_only(runtime, settings):  # noqa: F811
    settings.RAFT_CLUSTER_SECRET = SECRET
    r = prove({"nonce": NONCE, "source": A, "dest": B})
    assert r.status_code == 200, r.content
    assert r.json() == {"proof": proof(SECRET, NONCE, A, B)}
    # Asked to prove for another address (a leader challenging evil:80,
    # relayed here), it refuses: the proof is bound to the callee.
    r = prove({"nonce": NONCE, "source": A, "dest": "10.0.0.66:80"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.content


@pytest.mark.parametrize(
    "body",
    [
        {"nonce": "xyz", "source": A, "dest": B},
        {"nonce": "ab" * 8, "source": A, "dest": B},
        {"nonce": NONCE, "source": 5, "dest": B},
        {"nonce": NONCE, "source": A},
        [],
    ],
)
def test_a_malformed_challenge_is_400(runtime, settings, body):  # noqa: F811
    settings.RAFT_CLUSTER_SECRET = SECRET
    assert prove(body).status_code == 400


def test_without_a_secret_there_is_nothing_to_prove(runtime, settings):  # noqa: F811
    settings.RAFT_CLUSTER_SECRET = ""
    assert prove({"nonce": NONCE, "source": A, "dest": B}).status_code == 400


class _Prover:
    """A server at a free port answering /raft/prove with ``answer(body)``,
    recording every request's path and headers."""

    def __init__(self, answer):
        self.requests = []
        prover = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prover.requests.append((self.path, dict(self.headers), body))
                status, payload = answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "answer, proven",
    [
        (lambda b: (200, {"proof": proof(SECRET, b["nonce"], A, b["dest"])}), True),
        (lambda b: (200, {"proof": proof("another", b["nonce"], A, b["dest"])}), False),
        (lambda b: (200, {"proof": proof(SECRET, "00" * 32, A, b["dest"])}), False),
        (lambda b: (200, {"match_index": 10**6}), False),
        (lambda b: (404, {"error": "not_found"}), False),
    ],
)
def test_the_leader_believes_only_a_proof_of_its_own_nonce(answer, proven):
    server = _Prover(answer)
    try:
        if proven:
            ask_proof(server.address, A, SECRET)
        else:
            with pytest.raises(NotProven):
                ask_proof(server.address, A, SECRET)
    finally:
        server.close()
    ((path, headers, body),) = server.requests
    assert path == "/raft/prove"
    # The challenge never carries the secret itself.
    assert SECRET_HEADER.lower() not in {h.lower() for h in headers}
    assert SECRET not in json.dumps(body)
    assert body["dest"] == server.address and len(body["nonce"]) == 64


def test_an_unreachable_server_is_not_proven():
    with pytest.raises(NotProven, match="cannot reach"):
        ask_proof("127.0.0.1:1", A, SECRET)
