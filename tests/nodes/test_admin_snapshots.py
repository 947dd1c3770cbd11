"""The admin's snapshots page: the node's snapshot files, "take a snapshot
now" and the newest file's download, with and without a runtime in the
process; and the log changelist's line about a compacted log."""

import base64
import hashlib
from dataclasses import replace

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from consensus.errors import CommandTimeout
from consensus.models import LogEntry
from consensus.snapshots.store import SnapshotMeta, SnapshotStore, write_durably
from consensus.snapshots.take import NothingToSnapshot
from consensus.status import PeerInfo
from nodes import snapshot_admin

# Logins and sessions live in the accounts database (raftsite.routers).
pytestmark = pytest.mark.django_db(databases=["default", "accounts"])

PAGE = "/admin/nodes/snapshot/"
TAKE = "/admin/nodes/snapshot/take/"
DOWNLOAD = "/admin/nodes/snapshot/download/"
CONFIGURATION = '{"voters":["127.0.0.1:9990","127.0.0.1:9991"],"learners":[]}'


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def data_dir(tmp_path, settings):
    settings.RAFT_DATA_DIR = tmp_path
    settings.RAFT_NODE_ID = "127.0.0.1:9990"
    return tmp_path


def publish(store, index, term, data=None, created=1_767_225_600.0):
    """A published snapshot file of ``data`` (any bytes will do here)."""
    data = data if data is not None else f"state at {index}".encode() * 100
    temporary = store.temporary_path("test")
    write_durably(temporary, data)
    meta = SnapshotMeta(
        last_included_index=index,
        last_included_term=term,
        configuration=CONFIGURATION,
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
        created=created,
        configuration_index=1,
    )
    return store.publish(temporary, meta)


@pytest.fixture
def store(data_dir):
    return SnapshotStore(data_dir)


class FakeSnapshots:
    """runtime.snapshots and runtime.take_snapshot as the page uses them:
    ``outcome`` is what take_snapshot returns or raises."""

    def __init__(self, store):
        self.store = store
        self.outcome = None
        self.taken = []

    def take_snapshot(self, timeout=60.0):
        self.taken.append(timeout)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def snapshots(runtime, store):
    """The FakeRuntime with a snapshot service over ``store``."""
    fake = FakeSnapshots(store)
    runtime.snapshots = fake
    runtime.take_snapshot = fake.take_snapshot
    return fake


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def staff_with(*codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="nodes", codename__in=codenames
        )
    )
    return user


# --- who may do what ------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, snapshots):
    for url in (PAGE, DOWNLOAD):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    assert client.post(TAKE).status_code == 302
    assert snapshots.taken == []


def test_staff_without_permission_sees_nothing(client, snapshots):
    client.force_login(staff_with())
    assert client.get(PAGE).status_code == 403
    assert client.get(DOWNLOAD).status_code == 403
    assert client.post(TAKE).status_code == 403
    assert snapshots.taken == []


def test_view_permission_lists_and_downloads_but_cannot_take(client, store, snapshots):
    publish(store, 10, 2)
    client.force_login(staff_with("view_snapshot"))
    page = client.get(PAGE)
    assert page.status_code == 200
    assert b"snap-10-2" in page.content
    assert b"Take a snapshot now" not in page.content
    assert client.get(DOWNLOAD).status_code == 200
    assert client.post(TAKE).status_code == 403
    assert snapshots.taken == []


def test_taking_needs_a_post_with_the_csrf_token(store, snapshots):
    user = User.objects.create_superuser("root", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(TAKE).status_code == 405
    assert client.post(TAKE).status_code == 403  # no CSRF token
    assert snapshots.taken == []
    page = client.get(PAGE)
    token = page.context["csrf_token"]
    snapshots.outcome = publish(store, 10, 2)
    response = client.post(TAKE, {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert snapshots.taken == [snapshot_admin.TAKE_TIMEOUT_S]


def test_the_admin_index_lists_the_page_without_an_add_link(admin_client, data_dir):
    response = admin_client.get("/admin/")
    assert b'href="/admin/nodes/snapshot/"' in response.content
    # Taking one is a POST on the page, not an "add" form.
    assert b"/admin/nodes/snapshot/add/" not in response.content


# --- the list --------------------------------------------------------------------


def test_the_page_lists_every_snapshot_newest_first(admin_client, store, snapshots):
    older = publish(store, 10, 2)
    newer = publish(store, 25, 3, data=b"x" * 5000)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert [row.meta.name for row in response.context["rows"]] == [
        "snap-25-3",
        "snap-10-2",
    ]
    text = response.content.decode()
    for value in (
        '<tr data-snapshot="snap-25-3">',
        "<td>25</td>",
        "<td>3</td>",
        "4.9\xa0KB",  # filesizeformat
        'title="5000 bytes"',
        "2026-01-01 00:00:00 UTC",
        newer.checksum,
        older.checksum,
        "voters: 127.0.0.1:9990, 127.0.0.1:9991",
        "(entry 1)",
        "Take a snapshot now",
        'id="download-latest"',
        'download="raftsite-127.0.0.1_9990-snap-25-3.sqlite3"',
    ):
        assert value in text, value


def test_the_page_shows_the_nodes_snapshot_index_and_log(
    admin_client, runtime, snapshots
):
    runtime.node_status = replace(
        runtime.node_status, snapshot_index=6, first_log_index=4
    )
    text = admin_client.get(PAGE).content.decode()
    assert "Latest snapshot index: <strong>6</strong>" in text
    assert "the log holds index 4 to 9" in text


def test_no_snapshot_yet(admin_client, snapshots):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert b"No snapshot yet." in response.content
    assert b'id="download-latest"' not in response.content


def test_without_a_runtime_the_files_on_disk_are_listed(admin_client, store):
    publish(store, 10, 2)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert b"snap-10-2" in response.content
    assert b"The node is not running in this process" in response.content


def test_without_a_runtime_or_snapshots_folder_nothing_is_created(
    admin_client, data_dir
):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert b"No snapshot yet." in response.content
    assert not (data_dir / "snapshots").exists()


def test_a_leader_shows_the_transfers_under_way(admin_client, runtime, snapshots):
    sending = PeerInfo(
        "127.0.0.1:9991", True, 0, 1, 0.1,
        snapshot_index=25, snapshot_bytes_sent=1 << 20, snapshot_size=4 << 20,
    )  # fmt: skip
    runtime.node_status = replace(runtime.node_status, peers=(sending,))
    text = admin_client.get(PAGE).content.decode()
    assert "Snapshot 25 to <strong>127.0.0.1:9991</strong>" in text
    assert "1.0\xa0MB of 4.0\xa0MB" in text
    assert '<progress max="4194304" value="1048576">' in text


# --- take a snapshot now ---------------------------------------------------------


def test_take_now_says_what_it_took(admin_client, runtime, store, snapshots):
    snapshots.outcome = publish(store, 25, 3, data=b"x" * 2048)
    runtime.node_status = replace(runtime.node_status, first_log_index=20)
    response = admin_client.post(TAKE, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert messages_of(response) == [
        "Took snapshot snap-25-3: the applied state up to index 25 (term 3), "
        "2.0\xa0KB. The log now starts at index 20."
    ]
    assert snapshots.taken == [60.0]


def test_take_now_with_nothing_new(admin_client, snapshots):
    snapshots.outcome = NothingToSnapshot("covered")
    response = admin_client.post(TAKE, follow=True)
    assert messages_of(response) == [
        "Nothing new to snapshot: the latest snapshot already covers every "
        "applied entry (last applied 6)."
    ]


def test_take_now_timing_out(admin_client, snapshots):
    snapshots.outcome = CommandTimeout("slow disk")
    response = admin_client.post(TAKE, follow=True)
    assert messages_of(response) == [
        "The snapshot was not durable within 60 s; it may still complete. "
        "Reload this page to see."
    ]


def test_take_now_without_a_runtime(admin_client, store):
    response = admin_client.post(TAKE, follow=True)
    assert response.status_code == 200
    assert messages_of(response) == [
        "Cannot take a snapshot: the node is not running in this process "
        "(start it with runnode). Nothing was taken."
    ]


def test_take_now_while_the_node_starts(admin_client, runtime):
    runtime.snapshots = None  # opened with the data directory
    response = admin_client.post(TAKE, follow=True)
    assert messages_of(response) == [
        "Cannot take a snapshot: the node is still starting. "
        "Nothing was taken; try again in a moment."
    ]


def test_take_now_on_a_failing_disk(admin_client, snapshots):
    snapshots.outcome = OSError(28, "No space left on device")
    response = admin_client.post(TAKE, follow=True)
    assert messages_of(response) == [
        "Taking a snapshot failed: [Errno 28] No space left on device."
    ]


# --- download --------------------------------------------------------------------


def test_download_streams_the_newest_file(admin_client, store, snapshots):
    publish(store, 10, 2)
    data = bytes(range(256)) * 1000
    newest = publish(store, 25, 3, data=data)
    response = admin_client.get(DOWNLOAD)
    assert response.status_code == 200
    assert response.streaming
    assert b"".join(response.streaming_content) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "application/vnd.sqlite3"
    assert response["Content-Disposition"] == (
        'attachment; filename="raftsite-127.0.0.1_9990-snap-25-3.sqlite3"'
    )
    digest = base64.b64encode(bytes.fromhex(newest.checksum)).decode()
    assert response["Repr-Digest"] == f"sha-256=:{digest}:"
    response.close()


def test_download_without_a_runtime(admin_client, store):
    publish(store, 10, 2, data=b"on disk")
    response = admin_client.get(DOWNLOAD)
    assert b"".join(response.streaming_content) == b"on disk"
    response.close()


def test_download_with_no_snapshot(admin_client, snapshots):
    response = admin_client.get(DOWNLOAD, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert messages_of(response) == ["There is no snapshot to download yet."]


def test_download_of_a_snapshot_removed_meanwhile(
    admin_client, store, snapshots, monkeypatch
):
    """A newer snapshot may remove the one just listed: the download takes
    the newest again."""
    gone = publish(store, 10, 2)
    newest = publish(store, 25, 3, data=b"newest")
    store.data_path(gone).rename(store.directory / "elsewhere")
    answers = [gone, newest]
    monkeypatch.setattr(store, "latest", lambda: answers.pop(0))
    response = admin_client.get(DOWNLOAD)
    assert b"".join(response.streaming_content) == b"newest"
    response.close()


# --- the log changelist ----------------------------------------------------------

LOG = "/admin/consensus/logentry/"


def test_the_log_says_where_compacted_entries_went(admin_client, runtime):
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(5, 10))
    runtime.node_status = replace(
        runtime.node_status, snapshot_index=6, first_log_index=5
    )
    text = admin_client.get(LOG).content.decode()
    assert "Entries before index 5 are compacted" in text
    assert "into snapshot 6" in text
    assert 'href="/admin/nodes/snapshot/"' in text


def test_an_uncompacted_log_says_nothing(admin_client, runtime):
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(1, 10))
    assert b'id="compaction-note"' not in admin_client.get(LOG).content


def test_the_log_without_a_runtime_reads_the_files(admin_client, store):
    LogEntry.objects.bulk_create(LogEntry(index=i, term=1) for i in range(101, 131))
    publish(store, 120, 1)
    text = admin_client.get(LOG).content.decode()
    assert "Entries before index 101 are compacted" in text
    assert "into snapshot 120" in text
