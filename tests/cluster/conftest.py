"""Fixtures that start real 3-node clusters; every process dies at teardown."""

import contextlib
import sys
import time

import pytest

from .harness import LocalCluster

# The fixture waits this long for a first leader so a slow start still fails
# with the nodes' output; how long it took is a benchmark figure (make bench
# prints "first leader agreed N s after start"), not a timed test.
FIRST_LEADER_TIMEOUT = 20.0


@contextlib.contextmanager
def running_cluster(tmp_path_factory, name, size=3, env=None):
    """A started LocalCluster with an agreed leader; killed on exit."""
    cluster = LocalCluster(size, base_dir=tmp_path_factory.mktemp(name), env=env)
    try:
        cluster.start()
        # When each node first answered, to tell a slow start-up (imports,
        # migrations) from a slow election.
        serving = {}

        def all_serving():
            for node in cluster.nodes:
                if node.address not in serving and cluster.try_status(node):
                    serving[node.address] = time.monotonic() - cluster.started_at
            return len(serving) == size

        cluster.wait_until(all_serving, FIRST_LEADER_TIMEOUT, "every node serving")
        cluster.leader(timeout=FIRST_LEADER_TIMEOUT)
        cluster.first_leader_s = time.monotonic() - cluster.started_at
        cluster.serving_s = max(serving.values())
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    """One cluster for the tests that leave every node running."""
    with running_cluster(tmp_path_factory, "shared") as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _describe_clusters_on_failure(request):
    """After a failed test, print each cluster's state and output tails."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    for name in request.fixturenames:
        if name.startswith("_"):
            continue
        try:
            value = request.getfixturevalue(name)
        except Exception:  # noqa: BLE001 - only looking for clusters
            continue
        if isinstance(value, LocalCluster):
            print(f"\n=== {name} ===\n{value.describe(tail=40)}", file=sys.stderr)
