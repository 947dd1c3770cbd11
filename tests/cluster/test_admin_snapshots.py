"""The admin's Snapshots page on a real cluster: take a snapshot now, see
it listed and the log compacted behind it, download it and open it."""

import hashlib
import re
import secrets
import sqlite3
import uuid

import pytest
import requests

from .conftest import running_cluster
from .harness import manage
from .test_admin_writers import csrf_token, log_in

pytestmark = pytest.mark.cluster

USERNAME = "snapshots"
# The policy never takes one here by itself: the page does.
ENV = {"RAFT_SNAPSHOT_ENTRIES": "100000", "RAFT_SNAPSHOT_TRAILING": "5"}
PAGE = "/admin/nodes/snapshot/"
TAKEN = re.compile(r"Took snapshot (snap-(\d+)-(\d+)): the applied state up to index")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, "adminsnaps", env=ENV) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def admin(cluster):
    """A logged-in admin session on the first node, and that node."""
    node = cluster.nodes[0]
    password = secrets.token_urlsafe(12)
    made = manage(
        "createadmin", "--data-dir", str(node.data_dir),
        # "=": a token_urlsafe password starts with "-" one time in 64,
        # which argparse would take for an option.
        "--username", USERNAME, f"--password={password}",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    with requests.Session() as http:
        assert log_in(http, node.base_url, USERNAME, password)
        yield http, node


def take_now(http, node) -> str:
    """Press "Take a snapshot now"; the page's message after the redirect."""
    response = http.post(
        node.base_url + PAGE + "take/",
        data={"csrfmiddlewaretoken": csrf_token(http)},
        timeout=(1.0, 70.0),
    )
    assert response.status_code == 200 and response.url == node.base_url + PAGE
    return re.search(
        r'<ul class="messagelist">\s*<li class="\w+">(.*?)</li>', response.text, re.S
    ).group(1)


def test_take_a_snapshot_now_and_download_it(cluster, admin):
    http, node = admin
    page = http.get(node.base_url + PAGE, timeout=10)
    assert page.status_code == 200 and "No snapshot yet." in page.text

    commands = [f"before the snapshot {uuid.uuid4().hex[:6]} {i}" for i in range(20)]
    last = max(cluster.write(cluster.leader(), c)["index"] for c in commands)
    cluster.wait_applied(last)

    message = take_now(http, node)
    taken = TAKEN.search(message)
    assert taken, message
    name, index = taken.group(1), int(taken.group(2))
    assert index >= last
    status = cluster.status(node)
    assert status["snapshot_index"] == index
    # RAFT_SNAPSHOT_TRAILING entries are kept at and below the snapshot.
    assert status["first_log_index"] == index - 5 + 1
    assert f"The log now starts at index {index - 4}." in message
    log = cluster.get(node, "/api/log").json()
    assert log["first_index"] == index - 4 == log["entries"][0]["index"]

    page = http.get(node.base_url + PAGE, timeout=10).text
    assert f'<tr data-snapshot="{name}">' in page
    changelist = http.get(node.base_url + "/admin/consensus/logentry/", timeout=10)
    assert f"Entries before index {index - 4} are compacted" in changelist.text
    assert f"into snapshot {index}" in changelist.text

    # Nothing applied since: nothing new to snapshot.
    again = take_now(http, node)
    assert again.startswith("Nothing new to snapshot"), again

    download = http.get(node.base_url + PAGE + "download/", timeout=10)
    assert download.status_code == 200
    filename = f"raftsite-{node.address.replace(':', '_')}-{name}.sqlite3"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="{filename}"'
    )
    manifest = (node.data_dir / "snapshots" / f"{name}.json").read_text()
    assert hashlib.sha256(download.content).hexdigest() in manifest
    assert hashlib.sha256(download.content).hexdigest() in page

    # It is the applied state: an SQLite database naming its index.
    path = cluster.base_dir / filename
    path.write_bytes(download.content)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (included,) = db.execute(
            "SELECT last_included_index FROM raft_snapshot"
        ).fetchone()
        applied = {
            c for (c,) in db.execute("SELECT command FROM consensus_appliedmessage")
        }
    assert included == index
    assert set(commands) <= applied

    # The dashboard shows this node's snapshot index.
    data = http.get(node.base_url + "/dashboard/data", timeout=10).json()
    row = next(r for r in data["servers"] if r["id"] == node.address)
    assert row["snapshot_index"] == index
