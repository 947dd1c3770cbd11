"""An operator's session in headless Chromium against a real 3-node cluster:
log in, read the log, send a command from the dashboard and watch it
appear, add a server through the admin and see it on the dashboard, take a
snapshot from the admin and download it.

Screenshots land in artifacts/browser/. The tests run in order and share
one cluster and one browser profile (the login carries over).
"""

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster.harness import ROOT, LocalCluster

pytestmark = pytest.mark.cluster

MEMBERS = 3
USERNAME, PASSWORD = "operator", "browser-test-password"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # The spare starts as a non-member, to be added through the admin.
    cluster = LocalCluster(
        MEMBERS + 1,
        members=MEMBERS,
        base_dir=tmp_path_factory.mktemp("ui"),
        # A snapshot taken from the admin compacts all but 2 log entries.
        env={"RAFT_SNAPSHOT_TRAILING": "2"},
    )
    try:
        # Logins are per node, so the one used here exists on every node
        # (the spare too, whose admin is opened once it is a member).
        logins = [
            subprocess.Popen(
                [sys.executable, "manage.py", "createadmin", "--data-dir",
                 str(node.data_dir), "--username", USERNAME, "--password", PASSWORD],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            for node in cluster.nodes
        ]
        for login in logins:
            _, stderr = login.communicate(timeout=120)
            assert login.returncode == 0, stderr.decode()
        cluster.start_members()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def page(browser_context):
    page = browser_context.new_page()
    yield page
    page.close()


def log_in(page, base_url, shoot=None):
    """Open the dashboard; the login form comes first."""
    page.goto(f"{base_url}/dashboard/")
    if "/admin/login/" in page.url:
        if shoot:
            shoot(page, "01-login")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/dashboard/")


def server_row(page, address):
    return page.locator(f'#servers tbody tr[data-server="{address}"]')


def test_log_in_read_the_log_and_send_a_command(cluster, page, shoot):
    node = cluster.nodes[0]
    log_in(page, node.base_url, shoot)
    # Every member is drawn, reachable, and the leader stands out.
    for member in cluster.nodes[:MEMBERS]:
        row = server_row(page, member.address)
        row.locator("td.reachable").wait_for()
    leader = cluster.leader()
    page.locator(f'#servers tr.leader[data-server="{leader.address}"]').wait_for()
    page.wait_for_selector("#refresh-status:has-text('Live')")
    shoot(page, "02-dashboard")

    page.click("text=The log")
    page.wait_for_url("**/admin/consensus/logentry/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() >= 2  # the initial configuration and a no-op at least
    assert "Config" in rows.last.inner_text()
    shoot(page, "03-log")

    # The command form on the dashboard; the page must not reload.
    page.goto(f"{node.base_url}/dashboard/")
    page.evaluate("window.sameDocument = true")
    command = f"hello from chromium {uuid.uuid4().hex[:8]}"
    page.fill("#command-input", command)
    page.click("#command-form button[type=submit]")
    outcome = page.locator("#command-outcome.success")
    outcome.wait_for()
    assert "Committed at index" in outcome.inner_text()
    index = int(outcome.inner_text().split("index ")[1].split()[0])
    page.locator("#entries td.command", has_text=command).wait_for()
    assert page.evaluate("window.sameDocument") is True
    shoot(page, "04-command-sent")

    page.goto(f"{node.base_url}/admin/consensus/logentry/?q={command.split()[-1]}")
    found = page.locator("#result_list tbody tr")
    assert found.count() == 1
    assert str(index) in found.first.inner_text()
    shoot(page, "05-log-search")

    # Another node's dashboard learns of it too, live: a follower's view.
    cluster.wait_applied(index)


def test_the_dashboard_refreshes_by_itself(cluster, page):
    """A command sent elsewhere (the API of another node) shows up without
    any action on the page."""
    node = cluster.nodes[0]
    log_in(page, node.base_url)
    page.evaluate("window.sameDocument = true")
    command = f"sent elsewhere {uuid.uuid4().hex[:8]}"
    cluster.write(cluster.nodes[1], command)
    page.locator("#entries td.command", has_text=command).wait_for()
    assert page.evaluate("window.sameDocument") is True


def test_the_dashboard_draws_the_last_minutes(cluster, page, shoot):
    """The charts (uPlot, from the project's static files) fill in from the
    node's own history: commits per second and each follower's lag."""
    leader = cluster.leader()
    try:
        log_in(page, leader.base_url)
        for n in range(5):
            cluster.write(leader, f"chart {n}")
        # A canvas per chart once the history has two samples (a second apart).
        for chart in ("#chart-commits", "#chart-leaders", "#chart-lag"):
            page.locator(f"{chart} canvas").wait_for(timeout=15_000)
        legend = page.locator("#chart-lag .u-legend").inner_text()
        members = {s["id"] for s in cluster.status(leader)["servers"]}
        for follower in members - {leader.address}:
            assert follower in legend
        shoot(page, "03b-dashboard-charts")
    finally:
        # The leader may be a node the next tests expect to be logged out of.
        page.context.clear_cookies()


def test_logins_on_two_nodes_coexist(cluster, page):
    """Logins are per node, and one browser holds one for each node: each
    node names its session cookie after itself (cookies ignore ports)."""
    first, second = cluster.nodes[0], cluster.nodes[1]
    log_in(page, first.base_url)
    page.goto(f"{second.base_url}/dashboard/")
    assert "/admin/login/" in page.url  # another node, another login
    log_in(page, second.base_url)
    page.goto(f"{first.base_url}/dashboard/")
    assert page.url == f"{first.base_url}/dashboard/"  # still logged in


def test_add_a_server_through_the_admin(cluster, page, shoot):
    node, spare = cluster.nodes[0], cluster.nodes[MEMBERS]
    log_in(page, node.base_url)
    page.goto(f"{node.base_url}/admin/nodes/server/")
    if page.locator("input[name=address]").count() == 0:
        pytest.skip("the admin's servers page has no add form yet (issue 4)")
    cluster.start_node(spare)
    cluster.wait_until(lambda: cluster.try_status(spare), 20, "spare node serving")
    page.fill("input[name=address]", spare.address)
    with page.expect_navigation(timeout=60_000):
        page.locator("input[name=address]").press("Enter")
    success = page.locator(".messagelist .success")
    success.wait_for()
    assert spare.address in success.inner_text()
    shoot(page, "06-server-added")

    page.goto(f"{node.base_url}/dashboard/")
    row = server_row(page, spare.address)
    row.locator("td.reachable").wait_for()
    page.wait_for_function(
        """address => {
            const row = document.querySelector(`#servers tr[data-server="${address}"]`);
            return row && row.innerText.includes("voter")
                && row.querySelector(".role").innerText.trim() === "follower";
        }""",
        arg=spare.address,
    )
    assert page.locator("#servers tbody tr").count() == MEMBERS + 1
    shoot(page, "07-dashboard-four-servers")


def test_a_stopped_server_shows_unreachable(cluster, page, shoot):
    node = cluster.nodes[0]
    leader = cluster.leader()
    victim = next(n for n in cluster.live_nodes() if n not in (node, leader))
    log_in(page, node.base_url)
    cluster.kill(victim)
    row = server_row(page, victim.address)
    row.locator("td.unreachable").wait_for()
    assert "no: " in row.inner_text()
    shoot(page, "08-dashboard-server-down")


def test_take_and_download_a_snapshot(cluster, page, shoot):
    node = cluster.nodes[0]
    log_in(page, node.base_url)
    page.goto(f"{node.base_url}/admin/")
    page.click("#content-main a:text-is('Snapshots')")
    page.wait_for_url("**/admin/nodes/snapshot/")
    with page.expect_navigation(timeout=70_000):
        page.click("#take-snapshot")
    success = page.locator(".messagelist .success")
    success.wait_for()
    assert "Took snapshot" in success.inner_text()
    row = page.locator("#snapshots tbody tr").first
    name = row.get_attribute("data-snapshot")
    index = name.split("-")[1]
    shoot(page, "09-snapshot-taken")

    with page.expect_download() as info:
        page.click("#download-latest")
    download = info.value
    assert download.suggested_filename.endswith(f"-{name}.sqlite3")
    data = Path(download.path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row.locator("td.checksum").inner_text()

    # The log says where its head went; the dashboard shows the index.
    page.goto(f"{node.base_url}/admin/consensus/logentry/")
    assert f"into snapshot {index}" in page.locator("#compaction-note").inner_text()
    page.goto(f"{node.base_url}/dashboard/")
    cell = server_row(page, node.address).locator("td.snapshot .snapshot-index")
    cell.filter(has_text=index).wait_for()
    shoot(page, "10-dashboard-snapshot-index")
