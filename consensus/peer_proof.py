"""A server being added proves it holds the cluster secret before the
leader sends it anything (issue 10: "a server being added receives no log
until it proves the secret").

Every peer request carries the secret itself (X-Raft-Secret), so the
leader must not send one to an address it has not checked: anyone can ask
for ``evil:80`` to be added. The check is a challenge the secret never
travels in: the leader posts a fresh nonce to the new server's
``/raft/prove``; the server answers HMAC-SHA256(secret, nonce|source|dest).
``dest`` is the address the leader calls, and a server answers only for
its own, so a real member cannot be used to prove for another address.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import ssl

from .peer_connection import close_quietly, open_connection

PROVE_PATH = "/raft/prove"
NONCE_BYTES = 32
MAX_ANSWER_BYTES = 4096


class NotProven(Exception):
    """The server did not prove it holds the cluster secret; the message
    says why, in one line."""


def proof(secret: str, nonce: str, source: str, dest: str) -> str:
    message = f"{nonce}|{source}|{dest}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def ask_proof(
    peer: str,
    node_id: str,
    secret: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: tuple[float, float] = (1.0, 5.0),
) -> None:
    """Challenge ``peer``; raise NotProven unless it answers with the proof."""
    nonce = secrets.token_hex(NONCE_BYTES)
    body = json.dumps({"nonce": nonce, "source": node_id, "dest": peer}).encode()
    try:
        connection = open_connection(peer, timeout, ssl_context)
    except (OSError, http.client.HTTPException) as exc:
        raise NotProven(f"cannot reach it ({exc})") from None
    try:
        connection.request(
            "POST", PROVE_PATH, body, {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise NotProven(f"no answer ({exc})") from None
    finally:
        close_quietly(connection, peer)
    if response.status != 200 or len(answer) > MAX_ANSWER_BYTES:
        raise NotProven(f"it answered HTTP {response.status} to the challenge")
    try:
        given = json.loads(answer).get("proof")
    except (ValueError, AttributeError):
        given = None
    expected = proof(secret, nonce, node_id, peer)
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode(), expected.encode()
    ):
        raise NotProven("its answer does not prove the cluster secret")
