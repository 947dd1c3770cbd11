"""Schemathesis against a live node, from its own schema (issue 13 item 5):
the OpenAPI document at GET /api/schema/ describes every answer the node
gives, with no 5xx and no crash.

The node is a one-node cluster with RAFT_AUTH=required and a cluster secret,
and the run carries an admin token, so every operation runs, the membership
ones included, and none can do harm: POST /api/servers asks the new server
to prove it holds the secret first, which nothing generated can, so it is
refused (422) before the configuration changes; DELETE /api/servers/<the
node> is refused (409, the only voter) and any other address is no member
(404); POST /api/leader has no follower to hand over to (409 or 422).
The node runs the test state part (tests/stateplugin), whose entries the
apps operations append and read.

Bounded for the default run (RAFT_SCHEMA_EXAMPLES examples per operation,
10 unless set, within RAFT_SCHEMA_MAX_S seconds, 20 unless set);
`make schema-fuzz` runs more, on a random seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import running_cluster

pytestmark = pytest.mark.cluster

SECRET = "schema-secret"
ADMIN = "schema-fuzz-admin"
EXAMPLES = int(os.environ.get("RAFT_SCHEMA_EXAMPLES", "10"))
# Schemathesis keeps fuzzing until this is spent (--max-time).
MAX_S = int(os.environ.get("RAFT_SCHEMA_MAX_S", "20"))
SEED = os.environ.get("RAFT_SCHEMA_SEED", "13")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
HOOKS = "tests.cluster.schema_hooks"
ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {
        "RAFT_AUTH": "required",
        "RAFT_CLUSTER_SECRET": SECRET,
        "RAFT_CATCHUP_TIMEOUT_S": "2",
        # A state part, so that POST and GET /api/apps/<name> reach one (the
        # schema names the node's parts).
        "RAFT_STATE_APPS": "tests.stateplugin",
        "RAFT_STATE_PARTS": "tests.stateplugin.parts.CounterPart",
    }
    with running_cluster(tmp_path_factory, "schema", size=1, env=env) as cluster:
        yield cluster


def admin_token(cluster, node) -> str:
    """The cluster's first admin, asked for from loopback without a token."""
    answer = cluster.http.post(
        f"{node.base_url}/api/tokens",
        json={"username": ADMIN, "permissions": "read,write,admin"},
        timeout=(1.0, 10.0),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_schema_is_open_and_describes_the_client_api(cluster):
    node = cluster.nodes[0]
    answer = cluster.http.get(f"{node.base_url}/api/schema/", timeout=(1.0, 30.0))
    assert answer.status_code == 200, answer.text
    schema = answer.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/kv/{key}" in schema["paths"]
    assert not [p for p in schema["paths"] if not p.startswith("/api/")]
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    docs = cluster.http.get(f"{node.base_url}/api/docs/", timeout=(1.0, 10.0))
    assert docs.status_code == 200 and "swagger-ui" in docs.text


def test_schemathesis_finds_nothing(cluster, tmp_path):
    """Every answer is one the schema documents (status, headers, body),
    none is a 5xx, and the node still serves afterwards."""
    node = cluster.leader()
    token = admin_token(cluster, node)
    argv = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(CONFIG),
        "run", f"{node.base_url}/api/schema/",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES),
        "--max-time", str(MAX_S),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "30",
        "--suppress-health-check", "all",
        "--report", "junit",
        "--report-dir", str(tmp_path),
        "--no-color",
    ]  # fmt: skip
    if os.environ.get("RAFT_SCHEMA_RANDOM"):
        argv.remove("--seed")
        argv.remove(SEED)
    env = {
        **os.environ,
        # The config file hands the token to the schema's tokenAuth scheme;
        # the hooks keep the admin and its token out of the run's changes.
        "RAFT_SCHEMA_TOKEN": token,
        "RAFT_SCHEMA_ADMIN": ADMIN,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": str(ROOT),
    }
    started = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=MAX_S + 120,
    )
    elapsed = time.monotonic() - started
    print(result.stdout[-6000:])
    assert result.returncode == 0, (
        f"schemathesis exited {result.returncode} after {elapsed:.0f} s:\n"
        f"{result.stdout[-20000:]}\n{result.stderr[-4000:]}"
    )
    # No crash: the node still answers, and the run's token still works.
    assert cluster.try_status(node) is not None
    health = cluster.http.get(f"{node.base_url}/api/health/ready", timeout=(1.0, 5.0))
    assert health.status_code == 200, health.text
    users = cluster.http.get(
        f"{node.base_url}/api/users",
        headers={"Authorization": f"Token {token}"},
        timeout=(1.0, 5.0),
    )
    assert users.status_code == 200, users.text
