"""Prometheus metrics of a node (issue 13), with prometheus-client: what the
runtime counts and times as it goes, and its status read at each scrape.

Names follow Prometheus' conventions: ``raft_`` first, base units (seconds,
bytes), ``_total`` for counters. GET /metrics serves them (nodes/health.py).
One gunicorn worker process serves a node, so the default registry is the
node's.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

# Disk writes: from a fraction of a millisecond to a stalled disk.
_DISK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
_RPC_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)

LEADER_CHANGES = Counter(
    "raft_leader_changes",
    "Times this node saw the leader change (a new leader, or none known).",
)
PROPOSALS_COMMITTED = Counter(
    "raft_proposals_committed", "Client proposals this node led to commitment."
)
PROPOSALS_FAILED = Counter(
    "raft_proposals_failed",
    "Client proposals refused (not the leader) or lost to another leader's entry.",
)
SAVE_SECONDS = Histogram(
    "raft_storage_save_seconds",
    "One Ready's fsynced write of term, vote and entries.",
    buckets=_DISK_BUCKETS,
)
APPLY_SECONDS = Histogram(
    "raft_apply_transaction_seconds",
    "One batch of committed entries applied to the state machine.",
    buckets=_DISK_BUCKETS,
)
PEER_RPC_SECONDS = Histogram(
    "raft_peer_rpc_seconds",
    "Peer RPC round trips that got an answer, per peer.",
    ["peer"],
    buckets=_RPC_BUCKETS,
)
PEER_RPC_ERRORS = Counter(
    "raft_peer_rpc_errors", "Peer RPCs that got no usable answer, per peer.", ["peer"]
)
LOOP_BATCH = Histogram(
    "raft_loop_batch_items",
    "Inbox items the loop thread handled in one pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
INBOX_DEPTH = Gauge("raft_loop_inbox_depth", "Items waiting in the loop's inbox.")
SNAPSHOTS = Counter("raft_snapshots_taken", "Snapshots this node took.")
SNAPSHOT_BYTES = Gauge("raft_snapshot_size_bytes", "Size of the latest snapshot taken.")
SNAPSHOT_SECONDS = Histogram(
    "raft_snapshot_take_seconds",
    "Time to take one snapshot.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
INLINE_REQUESTS = Counter(
    "raft_inline_requests",
    "Requests the worker's main loop served itself (raftsite/inline_worker.py).",
    ["route"],
)
CLIENT_REQUESTS = Gauge(
    "raft_client_requests_in_flight", "Client requests (not /raft/) being served."
)
# Labels: method, route (the template, raftsite/request_metrics.py) and
# status class; from the first byte in to the last byte of the answer out.
CLIENT_REQUEST_SECONDS = Histogram(
    "raft_client_request_seconds",
    "Client requests (not /raft/), from arrival to the answer written.",
    ["method", "route", "status"],
    buckets=(
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        60,
    ),
)
KV_READS = Counter(
    "raft_kv_reads",
    "Key-value reads (a key or a page of keys) this node answered from its "
    "own state, by consistency level.",
    ["consistency"],
)


class Timed:
    """Wraps ``target`` so that calls to ``method`` are timed in ``histogram``;
    every other attribute is the target's."""

    def __init__(self, target, method: str, histogram: Histogram):
        self._target = target
        timed = getattr(target, method, None)
        if timed is None:
            return  # the target lacks it (a test's fake): nothing to time
        observe = histogram.observe

        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return timed(*args, **kwargs)
            finally:
                observe(time.perf_counter() - start)

        setattr(self, method, call)

    def __getattr__(self, name):
        return getattr(self._target, name)


class StatusCollector(Collector):
    """The node's status at scrape time: role, term, indexes, and the
    followers' progress as the leader sees it."""

    ROLES = ("leader", "follower", "candidate", "learner", "none")

    def __init__(self, status):
        # status(): the serving runtime's NodeStatus, or None.
        self._status = status

    def collect(self):
        status = self._status()
        if status is None:
            return
        role = GaugeMetricFamily(
            "raft_role", "1 for this node's current role.", labels=["role"]
        )
        for name in self.ROLES:
            role.add_metric([name], 1 if status.role == name else 0)
        yield role
        for name, text, value in (
            ("raft_term", "The current term.", status.term),
            ("raft_commit_index", "The highest index known committed.",
             status.commit_index),
            ("raft_applied_index", "The highest index applied.", status.last_applied),
            ("raft_last_log_index", "The last index in the log.", status.last_log_index),
            ("raft_snapshot_index", "The latest snapshot's last included index.",
             status.snapshot_index),
            ("raft_members", "Servers in the configuration.", len(status.servers)),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, text, value=value)
        match = GaugeMetricFamily(
            "raft_follower_match_index",
            "Each follower's match index, as the leader sees it.",
            labels=["peer"],
        )
        lag = GaugeMetricFamily(
            "raft_follower_lag_entries",
            "Entries each follower is behind the leader's last index.",
            labels=["peer"],
        )
        for peer in status.peers:
            match.add_metric([peer.id], peer.match_index)
            lag.add_metric([peer.id], max(0, status.last_log_index - peer.match_index))
        yield match
        yield lag


_registered = False


def register_status(status) -> None:
    """Add the status collector to the registry once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(StatusCollector(status))
        _registered = True
