"""The operators' cluster dashboard: the cluster as this node sees it.

This node is read in process (its runtime's status); every other member's
/api/status is fetched server-side, in parallel, with short timeouts. The
match index and last contact are the leader's view (Raft Figure 2's
volatile leader state). Staff login only, like the admin.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_POST

from consensus.membership import sending_snapshot
from consensus.models import KeyValue, LogEntry
from consensus.runtime import current_runtime
from consensus.transport import SECRET_HEADER

from . import kv_stats
from .auth import Caller, ClientUser, site_caller
from .client import (
    ClientError,
    ConnectionLost,
    ServerUnreachable,
    describe_commit,
    new_session,
    node_url,
    request_json,
)
from .forwarding import member_leader
from .local import LocalNode
from .tls import node_ca, node_cert

# A member that cannot answer its status this fast is shown unreachable:
# the page refreshes every POLL_MS, so one slow member must not stall it.
STATUS_TIMEOUT_S = (0.3, 1.0)
POLL_MS = 1500
NEWEST_ENTRIES = 10
# What each server's row shows of its own /api/status (this node's: of its
# NodeStatus). snapshot_index is null from a node that predates snapshots.
ROW_STATUS_KEYS = (
    "role", "term", "last_log_index", "commit_index", "last_applied",
    "snapshot_index",
)  # fmt: skip


def fetch_json(address: str, path: str) -> dict:
    """GET http(s)://<address><path> as a dict; raise ClientError with a few
    words when it does not answer or answers something else."""
    ca = node_ca()
    session = new_session(ca, node_cert())
    try:
        answer = request_json(
            session,
            "GET",
            node_url(address, path, ca),
            timeout=STATUS_TIMEOUT_S,
            headers=_peer_read_headers(),
        )
    except (ServerUnreachable, ConnectionLost) as exc:
        raise ClientError(exc.reason) from None
    finally:
        session.close()
    if answer.status != 200 or not answer.body:
        code = (answer.body or {}).get("error", "not JSON")
        raise ClientError(f"answered HTTP {answer.status} ({code})")
    return answer.body


def _peer_read_headers() -> dict[str, str]:
    """A member's /api/servers needs the read permission where tokens are
    required: this node asks as a peer, for its dashboard (nodes.auth)."""
    reader = ClientUser(f"dashboard of {settings.RAFT_NODE_ID}", frozenset({"read"}))
    headers = Caller(reader).headers()
    if settings.RAFT_CLUSTER_SECRET:
        headers[SECRET_HEADER] = settings.RAFT_CLUSTER_SECRET
    return headers


def cluster_snapshot(status, fetch=None) -> dict:
    """The dashboard's data: one row per server this node knows of, the
    newest committed entries, and this node's own view. ``fetch(address,
    path)`` reads another node's API (default: fetch_json)."""
    fetch = fetch or fetch_json
    members = {server.id: server.voter for server in status.servers}
    others = [address for address in sorted(members) if address != status.id]
    calls = [(address, "/api/status") for address in others]
    # Only a leader tracks match_index and last contact (Raft Figure 2);
    # a follower asks the leader it names for its view (never itself: its
    # own node is read in process, from ``status``).
    # The leader hint came from a peer's message: it is asked only if it
    # is a server of this node's configuration (nodes.forwarding).
    asks_leader = status.role != "leader" and status.leader not in (None, status.id)
    asks_leader = asks_leader and member_leader(status.leader, members) is not None
    if asks_leader:
        calls.append((status.leader, "/api/servers"))
    results = _fetch_all(fetch, calls)
    seen = {address: results[(address, "/api/status")] for address in others}
    seen[status.id] = (_own_status(status), None)

    progress_error = None
    if status.role == "leader":
        progress_from, progress = status.id, _own_progress(status)
    elif asks_leader:
        progress_from = status.leader
        view, progress_error = results[(status.leader, "/api/servers")]
        leader_status = seen.get(status.leader, (None, None))[0]
        progress = _progress_in(view, status.leader, leader_status)
    else:
        progress_from, progress = None, {}
    # A server still catching up is in the leader's progress before it is
    # in the configuration this node knows.
    for address in sorted(set(progress) - set(seen)):
        seen[address] = _attempt(fetch, address, "/api/status")

    rows = [
        _row(address, status.id, members, *seen[address], progress.get(address, {}))
        for address in sorted(seen)
    ]
    return {
        "node": status.id,
        "role": status.role,
        "term": status.term,
        "leader": status.leader,
        "commit_index": status.commit_index,
        "last_applied": status.last_applied,
        "snapshot_index": status.snapshot_index,
        "first_log_index": status.first_log_index,
        # Whose match indexes these are, and why there are none if so.
        "progress_from": None if progress_error else progress_from,
        "progress_error": progress_error,
        "servers": rows,
        "entries": newest_committed(status.commit_index),
        # The key-value store as this node has applied it, and the reads
        # this node served lately.
        "keys": KeyValue.objects.count(),
        "history": _history(),
        "kv_reads_per_s": kv_stats.reads.per_second(),
    }


def _history() -> dict | None:
    """The charts' series (consensus/history.py), when this process serves
    the node."""
    history = getattr(current_runtime(), "history", None)
    return history.series() if history is not None else None


def _row(address, own_id, members, answer, error, progress) -> dict:
    row = {
        "id": address,
        "voter": members.get(address, progress.get("voter", False)),
        "member": address in members,
        "self": address == own_id,
        "reachable": error is None,
        "error": error,
        "match_index": progress.get("match_index"),
        "last_contact_s": progress.get("last_contact_s"),
        # The snapshot the leader is sending it (Raft §7), while it is.
        "snapshot_transfer": _transfer(progress),
    }
    for key in ROW_STATUS_KEYS:
        row[key] = answer.get(key) if answer else None
    return row


def _fetch_all(fetch, calls) -> dict:
    """(address, path) -> (body, None) or (None, error), all in parallel so
    the page waits for the slowest member once, not for each in turn."""
    if not calls:
        return {}
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        outcomes = pool.map(lambda call: _attempt(fetch, *call), calls)
        return dict(zip(calls, outcomes, strict=False))


def _attempt(fetch, address, path):
    try:
        return fetch(address, path), None
    except ClientError as exc:
        return None, str(exc)


def _own_status(status) -> dict:
    return {key: getattr(status, key) for key in ROW_STATUS_KEYS}


def _own_progress(status) -> dict:
    progress = {
        peer.id: {
            "voter": peer.voter,
            "match_index": peer.match_index,
            "last_contact_s": peer.last_contact_s,
            # As the leader's GET /api/servers gives them (null: none).
            "snapshot_bytes_sent": (
                peer.snapshot_bytes_sent if sending_snapshot(peer) else None
            ),
            "snapshot_size": peer.snapshot_size if sending_snapshot(peer) else None,
        }
        for peer in status.peers
    }
    progress[status.id] = {"match_index": status.last_log_index, "last_contact_s": 0.0}
    return progress


def _transfer(progress) -> dict | None:
    """The snapshot the leader is sending a server, from its progress:
    {"bytes_sent", "size"}, or None when no transfer is under way."""
    size = progress.get("snapshot_size")
    if size is None:
        return None
    return {"bytes_sent": progress.get("snapshot_bytes_sent") or 0, "size": size}


def _progress_in(view, leader, leader_status) -> dict:
    """The leader's progress per server, from its GET /api/servers."""
    servers = (view or {}).get("servers")
    progress = {}
    if isinstance(servers, list):
        progress = {
            server["id"]: server
            for server in servers
            if isinstance(server, dict) and server.get("match_index") is not None
        }
    if view and leader not in progress and leader_status:
        # A leader's match index for itself is its last log index.
        progress[leader] = {"match_index": leader_status.get("last_log_index")}
    return progress


def newest_committed(commit_index: int) -> list[dict]:
    # Raft §5.3: only entries up to the commit index are final.
    entries = LogEntry.objects.filter(index__lte=commit_index).order_by("-index")
    return [
        {
            "index": entry.index,
            "term": entry.term,
            "type": entry.type,
            "command": Truncator(entry.command).chars(200),
        }
        for entry in entries[:NEWEST_ENTRIES]
    ]


def admin_url(name: str) -> str | None:
    """An admin page's URL (nodes.admin's servers or snapshots page), if
    registered."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def staff_json(view):
    """Like staff_member_required, but a script (the page's polling) gets
    401 JSON instead of a redirect to the login form's HTML."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not (user.is_active and user.is_staff):
            return JsonResponse(
                {"error": "unauthorized", "detail": "Log in to the admin again."},
                status=401,
            )
        return view(request, *args, **kwargs)

    return wrapped


def _snapshot_or_none():
    runtime = current_runtime()
    status = runtime.status() if runtime is not None else None
    return None if status is None else cluster_snapshot(status)


@require_GET
@staff_member_required
def dashboard(request):
    """The page; its script renders the data and polls for fresh data."""
    context = {
        **admin.site.each_context(request),
        "title": "Cluster dashboard",
        "snapshot": _snapshot_or_none(),
        "poll_ms": POLL_MS,
        "servers_admin_url": admin_url("admin:nodes_server_changelist"),
        "snapshots_admin_url": admin_url("admin:nodes_snapshot_changelist"),
    }
    return render(request, "nodes/dashboard.html", context)


@require_GET
@staff_json
def dashboard_data(request):
    snapshot = _snapshot_or_none()
    if snapshot is None:
        return JsonResponse(
            {"error": "no_node", "detail": "This process is not serving a Raft node."},
            status=503,
        )
    return JsonResponse(snapshot)


@require_POST
@staff_json
def send_command(request):
    """Send a client command through this node's own API path, in process
    (nodes.local): a follower forwards it to the leader and says so."""
    command = _posted_command(request)
    if not command:
        return JsonResponse({"ok": False, "error": "Type a command first."}, status=400)
    runtime = current_runtime()
    if runtime is None:
        error = "This process is not serving a Raft node."
        return JsonResponse({"ok": False, "error": error}, status=503)
    # How long to keep retrying while no leader is known, as the CLI does;
    # a little more than one attempt's own wait (a commit or a 504).
    timeout_s = settings.RAFT_COMMAND_TIMEOUT_S + 3
    try:
        caller = site_caller(request.user.get_username())
        with LocalNode(runtime, timeout_s, caller=caller) as node:
            commit = node.submit(command)
    except ClientError as exc:
        return JsonResponse({"ok": False, "error": str(exc)}, status=502)
    return JsonResponse(
        {
            "ok": True,
            "index": commit.index,
            "term": commit.term,
            "server": commit.server,
            "leader": commit.leader,
            "forwarded": commit.forwarded,
            "text": describe_commit(commit),
        }
    )


def _posted_command(request) -> str:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body)
        except ValueError:
            return ""
        value = body.get("command") if isinstance(body, dict) else None
    else:
        value = request.POST.get("command")
    return value if isinstance(value, str) and value.strip() else ""
