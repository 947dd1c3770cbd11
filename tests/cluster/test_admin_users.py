"""The admin's Cluster users page on a real cluster, used from a follower:
the token it shows works on every server, and stops working on every
server once revoked there; each change is an ACCESS entry in the log."""

import html
import re
import secrets

import pytest
import requests

from .conftest import running_cluster
from .harness import manage
from .test_admin_writers import csrf_token, log_in

pytestmark = pytest.mark.cluster

USERNAME = "tokens"
PAGE = "/admin/consensus/clusteruser/"
TOKEN = re.compile(r'id="token" readonly size="80" value="(raft_[0-9a-f]{12}_[^"]+)"')
MESSAGE = re.compile(r'<ul class="messagelist">\s*<li class="(\w+)">(.*?)</li>', re.S)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, "adminusers") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def admin(cluster):
    """A logged-in admin session on a follower, and that follower."""
    leader = cluster.leader()
    node = cluster.others(leader)[0]
    password = secrets.token_urlsafe(12)
    made = manage(
        "createadmin", "--data-dir", str(node.data_dir),
        "--username", USERNAME, "--password", password,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    with requests.Session() as http:
        assert log_in(http, node.base_url, USERNAME, password)
        yield http, node


def log_status(cluster, node, token) -> int:
    return requests.get(
        node.base_url + "/api/log",
        headers={"Authorization": f"Token {token}"},
        timeout=5,
    ).status_code


def test_a_token_made_on_a_follower_works_everywhere_until_revoked(cluster, admin):
    http, node = admin
    answer = http.post(
        node.base_url + PAGE + "add/",
        data={
            "username": "ci",
            "permissions": ["read", "write"],
            "csrfmiddlewaretoken": csrf_token(http),
        },
        timeout=30,
    )
    assert answer.status_code == 200
    found = TOKEN.search(answer.text)
    assert found, MESSAGE.findall(answer.text) or answer.text[-2000:]
    token = found.group(1)
    assert "forwarded to the leader" in answer.text
    assert "no-store" in answer.headers["Cache-Control"]

    # The entry reaches every server, which then knows the token.
    index = int(re.search(r"committed at index (\d+)", answer.text).group(1))
    cluster.wait_applied(index)
    [entry] = [e for e in cluster.log(node) if e["index"] == index]
    assert entry["type"] == "access" and token not in entry["command"]
    for each in cluster.nodes:
        assert log_status(cluster, each, token) == 200, each

    token_id = token.split("_")[1]
    listing = http.get(node.base_url + PAGE, timeout=10).text
    assert "<td>ci</td>" in listing and token not in listing
    # The leader recorded who asked: the follower vouched for the login.
    assert (
        f"<code>{token_id}</code> (index {entry['index']}, by {USERNAME} (admin site))"
        in listing
    )

    revoked = http.post(
        f"{node.base_url}{PAGE}tokens/{token_id}/revoke/",
        data={"csrfmiddlewaretoken": csrf_token(http)},
        timeout=30,
    )
    assert revoked.status_code == 200
    [(level, text)] = MESSAGE.findall(revoked.text)
    assert level == "success", text
    assert html.unescape(text).startswith(f"Revoked token {token_id}: committed")
    index = int(re.search(r"at index (\d+)", text).group(1))
    cluster.wait_applied(index)
    for each in cluster.nodes:
        assert log_status(cluster, each, token) == 401, each
