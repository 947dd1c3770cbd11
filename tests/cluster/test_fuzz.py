"""Fuzz the edge (issue 10, item 1): Hypothesis throws malformed and mutated
peer messages and client requests at a live node (a one-node cluster with a
cluster secret), which must keep serving, never answer 5xx, and keep its
term and log through everything it refuses.

Every peer message generated is one the node must refuse: a well-formed
message mutated in one way that makes it malformed (400, 413), a call
without the secret (401), or a well-formed message of a term no newer than
the node's, which the leader of a one-node cluster refuses (200 with a
refusal). So the node's term, last index, commit index and log must be
exactly as before. Client requests may commit commands: the log may only
grow, and what was committed stays.

Bounded for the default run (a fixed seed and RAFT_FUZZ_EXAMPLES examples
per test, 150 unless set); `make fuzz` runs more, on a random seed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.parse

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.addresses import InvalidAddress, normalise_address
from consensus.transport import SECRET_HEADER
from consensus.validation import MAX_PEER_BODY_BYTES, MAX_PEER_INT

from .conftest import running_cluster

pytestmark = pytest.mark.cluster

SECRET = "fuzz-secret"
EXAMPLES = int(os.environ.get("RAFT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The default run is the same every time; `make fuzz` explores.
    derandomize=os.environ.get("RAFT_FUZZ_RANDOM", "") == "",
    database=None,
    suppress_health_check=list(HealthCheck),
)
TIMEOUT = (1.0, 15.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {"RAFT_CLUSTER_SECRET": SECRET}
    with running_cluster(tmp_path_factory, "fuzz", size=1, env=env) as cluster:
        yield cluster


def observe(cluster) -> tuple[int, int, int, list[dict]]:
    """The node's term, last log index, commit index and committed log;
    fails if the node is dead or does not serve."""
    node = cluster.nodes[0]
    assert node.running, "the node's process ended"
    # Generous timeouts: a busy machine must not fail the test.
    response = cluster.http.get(node.base_url + "/api/status", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    status = response.json()
    entries, start = [], 1
    while True:
        page = cluster.http.get(
            node.base_url + "/api/log",
            params={"from": start, "limit": 1000},
            timeout=TIMEOUT,
        )
        assert page.status_code == 200, page.text
        batch = page.json()["entries"]
        if not batch:
            break
        entries.extend(batch)
        start = batch[-1]["index"] + 1
    return status["term"], status["last_log_index"], status["commit_index"], entries


def is_address(value) -> bool:
    try:
        normalise_address(value)
        return True
    except InvalidAddress:
        return False


def is_full_address(value) -> bool:
    try:
        return isinstance(value, str) and normalise_address(value) == value
    except InvalidAddress:
        return False


# -- building blocks -----------------------------------------------------

# JSON values of any shape, for fields that must be something else.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Text with lone surrogates among other characters: JSON escapes them, and
# UTF-8 cannot encode them.
surrogate_text = st.builds(
    lambda head, s, tail: head + s + tail,
    st.text(max_size=5),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=5),
)
good_addresses = st.sampled_from(
    ["127.0.0.1:1", "10.0.0.7:9990", "example.org:80", "[::1]:9990", "node-3:7000"]
)
bad_addresses = st.one_of(
    st.sampled_from(
        ["", ":9990", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "http://a:1"]
    ),
    surrogate_text,
    st.text(max_size=30),
    json_values,
).filter(lambda value: not is_full_address(value))
# What the client API must refuse as an address (":9990" is one, short).
invalid_addresses = bad_addresses.filter(lambda value: not is_address(value))


def out_of_range(minimum: int = 0):
    """A JSON value that is no integer in [minimum, MAX_PEER_INT]."""
    return st.one_of(
        st.integers(max_value=minimum - 1),
        st.integers(min_value=MAX_PEER_INT + 1),
        st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63)]),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
    )


# -- peer messages ---------------------------------------------------------

# Integer fields of each message, and those it may not go without.
INT_FIELDS = {
    "append_entries": (
        "term",
        "prev_log_index",
        "prev_log_term",
        "leader_commit",
        "request_id",
    ),
    "request_vote": ("term", "last_log_index", "last_log_term"),
    "timeout_now": ("term", "last_log_index", "last_log_term"),
}
REQUIRED = {
    "append_entries": ("term", "source", "dest", "prev_log_index", "prev_log_term"),
    "request_vote": ("term", "source", "dest", "last_log_index", "last_log_term"),
    "timeout_now": ("term", "source", "dest"),
}
ENTRY_TYPES = ("command", "config", "noop")
CONFIG = json.dumps({"voters": ["127.0.0.1:1"], "learners": []})
BAD_CONFIGS = st.one_of(
    st.sampled_from(
        [
            "",
            "null",
            "[]",
            "{}",
            '{"voters": 5}',
            '{"voters": [1]}',
            '{"voters": ["x"]}',
        ]
    ),
    st.builds(lambda s: json.dumps({"voters": [s]}), surrogate_text),
)


@st.composite
def entries(draw, prev_log_index: int, prev_log_term: int, term: int):
    """Entries that follow prev_log_index, terms between prev_log_term and
    term, never decreasing."""
    result, index, last_term = [], prev_log_index, prev_log_term
    for _ in range(draw(st.integers(0, 4))):
        index += 1
        last_term = draw(st.integers(last_term, term))
        kind = draw(st.sampled_from(ENTRY_TYPES))
        command = {"command": draw(st.text(max_size=30)), "config": CONFIG}
        entry = {
            "index": index,
            "term": last_term,
            "type": kind,
            "command": command.get(kind, ""),
        }
        if kind == "command" and draw(st.booleans()):
            entry["client_id"] = draw(st.text(min_size=1, max_size=10))
            entry["seq"] = draw(st.integers(0, MAX_PEER_INT))
            entry["timestamp_ms"] = draw(st.integers(0, MAX_PEER_INT))
        result.append(entry)
    return result


@st.composite
def stale_message(draw, endpoint: str, dest: str, term: int) -> dict:
    """A well-formed message of a term no newer than ``term``."""
    message = {
        "term": draw(st.integers(0, term)),
        "source": draw(good_addresses),
        "dest": dest,
    }
    if endpoint == "append_entries":
        prev_log_index = draw(st.integers(0, 50))
        prev_log_term = draw(st.integers(0, message["term"]))
        message |= {
            "prev_log_index": prev_log_index,
            "prev_log_term": prev_log_term,
            "entries": draw(entries(prev_log_index, prev_log_term, message["term"])),
            "leader_commit": draw(st.integers(0, 60)),
            "request_id": draw(st.integers(0, 1000)),
        }
    elif endpoint == "request_vote":
        message |= {
            "last_log_index": draw(st.integers(0, 2**40)),
            "last_log_term": draw(st.integers(0, message["term"])),
            "pre_vote": draw(st.booleans()),
            "transfer": draw(st.booleans()),
        }
    else:
        message |= {
            "last_log_index": draw(st.integers(-1, 100)),
            "last_log_term": draw(st.integers(-1, message["term"])),
        }
    return message


@st.composite
def mutated_message(draw, endpoint: str, dest: str, term: int) -> dict | str:
    """A message made malformed in one way (JSON text, or a dict)."""
    message = draw(stale_message(endpoint, dest, term))
    kinds = ["int", "source", "dest", "missing", "not_object", "garbage"]
    if endpoint == "append_entries":
        kinds += ["entries"] * 3 + ["prev_log_term"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        field = draw(st.sampled_from(INT_FIELDS[endpoint]))
        minimum = -1 if endpoint == "timeout_now" and field != "term" else 0
        message[field] = draw(out_of_range(minimum))
    elif kind == "source":
        message["source"] = draw(bad_addresses)
    elif kind == "dest":
        message["dest"] = draw(
            st.one_of(bad_addresses, good_addresses.filter(lambda a: a != dest))
        )
    elif kind == "missing":
        del message[draw(st.sampled_from(REQUIRED[endpoint]))]
    elif kind == "not_object":
        return json.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    elif kind == "garbage":
        return draw(st.text(max_size=40).filter(lambda t: not _is_json_object(t)))
    elif kind == "prev_log_term":
        message["prev_log_term"] = message["term"] + draw(st.integers(1, 10))
    else:
        message["entries"] = draw(bad_entries(message))
    return message


def names(text: str, address: str) -> bool:
    try:
        return normalise_address(text) == address
    except InvalidAddress:
        return False


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@st.composite
def bad_entries(draw, message: dict) -> list:
    """The message's entries, or one more, broken in one way."""
    result = [dict(e) for e in message["entries"]]
    if not result:
        result = [
            {
                "index": message["prev_log_index"] + 1,
                "term": message["term"],
                "type": "noop",
                "command": "",
            }
        ]
    at = draw(st.integers(0, len(result) - 1))
    entry = result[at]
    kind = draw(
        st.sampled_from(
            ["gap", "term_above", "type", "config", "surrogate", "int", "seq", "shape"]
        )
    )
    if kind == "gap":
        entry["index"] += draw(st.integers(1, 100) | st.integers(-100, -1))
    elif kind == "term_above":
        entry["term"] = message["term"] + draw(st.integers(1, 100))
    elif kind == "type":
        entry["type"] = draw(json_values.filter(lambda v: v not in ENTRY_TYPES))
    elif kind == "config":
        entry["type"], entry["command"] = "config", draw(BAD_CONFIGS)
    elif kind == "surrogate":
        entry["type"], entry["command"] = "command", draw(surrogate_text)
    elif kind == "int":
        field = draw(st.sampled_from(["index", "term", "timestamp_ms"]))
        entry[field] = draw(out_of_range())
    elif kind == "seq":
        entry["client_id"] = "c"
        entry["seq"] = draw(out_of_range().filter(lambda v: v is not None))
    else:
        result[at] = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return result


def chunk(dest: str, term: int, data: bytes, source="127.0.0.1:1") -> dict:
    return {
        "term": term,
        "source": source,
        "dest": dest,
        "last_included_index": 100,
        "last_included_term": term,
        "configuration": CONFIG,
        "configuration_index": 1,
        "size": len(data),
        "checksum": hashlib.sha256(data).hexdigest(),
        "offset": 0,
        "data": base64.b64encode(data).decode(),
        "done": True,
    }


@st.composite
def mutated_chunk(draw, dest: str, term: int) -> dict:
    """A snapshot chunk made malformed in one way."""
    message = chunk(dest, draw(st.integers(0, term)), draw(st.binary(max_size=64)))
    kind = draw(
        st.sampled_from(
            ["int", "source", "dest", "checksum", "data", "done", "config", "past"]
            + ["no_snapshot"] * 2
        )
    )
    if kind == "no_snapshot":
        # Whole, its checksum right, of this term or a newer one: bytes
        # that are no snapshot (restoring them stopped the node).
        data = draw(st.binary(min_size=1, max_size=200))
        newer = term + draw(st.integers(0, 3))
        return chunk(dest, newer, data) | {"last_included_term": newer}
    if kind == "int":
        field = draw(
            st.sampled_from(
                [
                    "term",
                    "last_included_index",
                    "last_included_term",
                    "configuration_index",
                    "size",
                    "offset",
                ]
            )
        )
        message[field] = draw(out_of_range())
    elif kind == "source":
        message["source"] = draw(bad_addresses)
    elif kind == "dest":
        message["dest"] = draw(
            st.one_of(bad_addresses, good_addresses.filter(lambda a: a != dest))
        )
    elif kind == "checksum":
        message["checksum"] = draw(
            json_values.filter(
                lambda v: not (isinstance(v, str) and len(v) == 64 and v.islower())
            )
        )
    elif kind == "data":
        message["data"] = draw(st.sampled_from(["!!", "a", "YQ", "@@@@", "\ud800"]))
    elif kind == "done":
        message["done"] = not message["done"]
    elif kind == "config":
        message["configuration"] = draw(BAD_CONFIGS)
    else:
        message["last_included_term"] = message["term"] + draw(st.integers(1, 9))
    return message


def post_raft(cluster, endpoint: str, body, secret: str | None = SECRET):
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return cluster.http.post(
        f"{cluster.nodes[0].base_url}/raft/{endpoint}",
        data=raw.encode("utf-8", "surrogatepass"),
        headers=headers,
        timeout=TIMEOUT,
    )


def assert_error_shape(response):
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)


PEER_ENDPOINTS = ("append_entries", "request_vote", "timeout_now")


@FUZZ
@given(data=st.data())
def test_peer_messages_the_node_refuses_change_nothing(cluster, data):
    before = observe(cluster)
    term, dest = before[0], cluster.nodes[0].address
    endpoint = data.draw(st.sampled_from(PEER_ENDPOINTS + ("install_snapshot",)))
    how = data.draw(st.sampled_from(["mutated", "mutated", "stale", "secret"]))
    if endpoint == "install_snapshot":
        stale = chunk(dest, data.draw(st.integers(0, term - 1)), b"")
        mutated = mutated_chunk(dest, term)
    else:
        stale = data.draw(stale_message(endpoint, dest, term))
        mutated = mutated_message(endpoint, dest, term)
    if how == "mutated":
        response = post_raft(cluster, endpoint, data.draw(mutated))
        assert response.status_code in (400, 413), response.text
        assert_error_shape(response)
    elif how == "secret":
        secret = data.draw(st.one_of(st.none(), st.text("abcdefghij-", max_size=12)))
        response = post_raft(cluster, endpoint, stale, secret=secret)
        assert response.status_code == 401, response.text
    else:
        response = post_raft(cluster, endpoint, stale)
        assert response.status_code == 200, response.text
        reply = response.json()
        assert not reply.get("success", False) and not reply.get("vote_granted", False)
    assert observe(cluster) == before


def test_a_peer_body_over_the_cap_is_413_and_changes_nothing(cluster):
    before = observe(cluster)
    body = '{"term": 0, "padding": "' + "p" * MAX_PEER_BODY_BYTES + '"}'
    response = post_raft(cluster, "append_entries", body)
    assert response.status_code == 413
    assert observe(cluster) == before


# -- client requests ---------------------------------------------------------


@st.composite
def command_body(draw):
    """A POST /api/commands body: well formed, or broken in one way."""
    body = {"command": draw(st.text(max_size=40))}
    if draw(st.booleans()):
        body["client_id"] = draw(st.text(min_size=1, max_size=20))
        body["seq"] = draw(st.integers(0, MAX_PEER_INT))
    kind = draw(st.sampled_from(["ok", "ok", "surrogate", "seq", "field", "shape"]))
    if kind == "surrogate":
        body[draw(st.sampled_from(["command", "client_id"]))] = draw(surrogate_text)
        body.setdefault("seq", 1)
    elif kind == "seq":
        body["client_id"] = "c"
        body["seq"] = draw(out_of_range())
    elif kind == "field":
        body[draw(st.sampled_from(["command", "client_id", "seq"]))] = draw(json_values)
    elif kind == "shape":
        return draw(json_values)
    return body


@st.composite
def client_request(draw, own: str) -> tuple[str, str, dict | None, object]:
    """(method, path, query, JSON body) of a client request that adds or
    removes no server and moves no leadership."""
    which = draw(
        st.sampled_from(
            ["commands", "commands", "log", "status", "servers", "leader",
             "batch", "tokens", "kv", "kv", "kv_list", "watch"]
        )
    )  # fmt: skip
    query_values = st.one_of(
        st.integers(), st.sampled_from([2**62, 2**63, 10**30]), st.text(max_size=8)
    )
    if which == "commands":
        return "POST", "/api/commands", None, draw(command_body())
    if which == "log":
        query = draw(st.dictionaries(st.sampled_from(["from", "limit"]), query_values))
        return "GET", "/api/log", query, None
    if which == "batch":
        commands = draw(st.one_of(st.lists(st.text(max_size=8), max_size=4),
                                  json_values))  # fmt: skip
        return "POST", "/api/commands", None, {"commands": commands}
    if which == "tokens":
        # Never a valid one: a user made here would outlive the test.
        body = draw(st.one_of(json_values, st.fixed_dictionaries(
            {"username": st.text(max_size=8).filter(lambda t: " " in t or not t),
             "permissions": st.text(max_size=12)})))  # fmt: skip
        return "POST", "/api/tokens", None, body
    if which == "kv":
        key = draw(st.one_of(st.text(min_size=1, max_size=20), surrogate_text))
        path = "/api/kv/" + urllib.parse.quote(key.encode("utf-8", "surrogatepass"))
        method = draw(st.sampled_from(["GET", "PUT", "DELETE"]))
        if method == "GET":
            query = {"consistency": draw(st.sampled_from(
                ["linearizable", "leader", "stale", "other", ""]))}  # fmt: skip
            return "GET", path, query, None
        if method == "DELETE":
            query = draw(
                st.dictionaries(
                    st.sampled_from(["prev_revision", "client_id", "seq"]), query_values
                )
            )
            return "DELETE", path, query, None  # fmt: skip
        body = draw(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {
                        "value": st.one_of(
                            st.text(max_size=20), surrogate_text, json_values
                        )
                    },
                    optional={
                        "prev_revision": st.one_of(st.integers(), out_of_range())
                    },
                ),
            )
        )
        return "PUT", path, None, body  # fmt: skip
    if which == "kv_list":
        query = draw(
            st.dictionaries(
                st.sampled_from(["prefix", "after", "limit", "consistency"]),
                query_values,
            )
        )
        return "GET", "/api/kv", query, None  # fmt: skip
    if which == "watch":
        query = draw(
            st.dictionaries(st.sampled_from(["prefix", "after"]), query_values)
        )
        return "GET", "/api/watch", {**query, "timeout": 0}, None
    if which == "status":
        return "GET", "/api/status", {"x": draw(st.text(max_size=8))}, None
    if which == "leader":
        # (null asks for a transfer to the most up-to-date follower.)
        to = draw(invalid_addresses.filter(lambda v: v is not None))
        return "POST", "/api/leader", None, {"to": to}
    # servers: an address to add that is none (400), or one to remove that
    # is not this node (404, or 400).
    if draw(st.booleans()):
        return "POST", "/api/servers", None, {"address": draw(invalid_addresses)}
    text = draw(st.text(min_size=1, max_size=30).filter(lambda t: not names(t, own)))
    path = "/api/servers/" + urllib.parse.quote(text.encode("utf-8", "surrogatepass"))
    return "DELETE", path, None, None


@FUZZ
@given(data=st.data())
def test_client_requests_never_5xx_and_committed_entries_stay(cluster, data):
    before = observe(cluster)
    own = cluster.nodes[0].address
    method, path, query, body = data.draw(client_request(own))
    response = cluster.http.request(
        method,
        cluster.nodes[0].base_url + path,
        params=query,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert response.status_code < 500, response.text
    after = observe(cluster)
    assert after[0] == before[0], "a client request changed the term"
    # Committed entries stay (compaction may drop the oldest from /api/log).
    kept = {entry["index"]: entry for entry in after[3]}
    first = min(kept, default=1)
    for entry in before[3]:
        if entry["index"] >= first:
            assert kept.get(entry["index"]) == entry, "committed entries changed"
    if response.status_code >= 400:
        assert_error_shape(response)
        # A key-value write refused in apply (404, 412) is an entry that
        # changed nothing: only requests refused before the log count.
        if method == "POST" or response.status_code not in (404, 412):
            assert after[1:3] == before[1:3], "a refused request changed the log"


def test_the_node_still_commits_after_the_fuzzing(cluster):
    """Last: whatever came before, a command still commits and applies."""
    node = cluster.nodes[0]
    response = cluster.post(node, "/api/commands", {"command": "still here"})
    assert response.status_code == 200, response.text
    assert cluster.log(node)[-1]["command"] == "still here"
    assert isinstance(
        requests.get(node.base_url + "/api/status", timeout=2).json(), dict
    )
