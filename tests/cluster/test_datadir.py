"""A node's data directory: one process at a time, through a second runnode
and a gunicorn reload, and applied state that a restart neither replays nor
prints again."""

import re
import signal

import pytest

from .conftest import running_cluster
from .harness import free_ports, manage, one_line_failure

pytestmark = pytest.mark.cluster

DATA_DIR_EVENT = re.compile(r"^(Opened|Closed) data directory .* \(pid (\d+)\)$")


def data_dir_events(cluster, node) -> list[tuple[str, int]]:
    events = []
    for line in cluster.events(node):
        m = DATA_DIR_EVENT.match(line)
        if m:
            events.append((m.group(1), int(m.group(2))))
    return events


def test_a_second_runnode_on_the_same_data_directory_fails_fast(tmp_path_factory):
    with running_cluster(tmp_path_factory, "twice", size=1) as cluster:
        node = cluster.nodes[0]
        (port,) = free_ports(1)
        result = manage(
            "runnode", "--port", str(port), "--data-dir", str(node.data_dir), timeout=30
        )
        line = one_line_failure(result)
        # The pid is the running node's, the one an operator would stop.
        assert line == (
            f"error: data directory {node.data_dir} is in use by another "
            f"process (pid {node.pid})"
        ), line
        # The running node is untouched.
        cluster.write(node, "still here")


def test_a_reload_never_runs_two_runtimes_on_the_database(tmp_path_factory):
    """SIGHUP makes gunicorn start a new worker while the old one drains:
    the new runtime opens the data directory only after the old one has
    closed it, and the node serves again, its state intact."""
    with running_cluster(tmp_path_factory, "reload", size=1) as cluster:
        node = cluster.nodes[0]
        before = cluster.write(node, "before the reload")
        cluster.write(node, "count")
        (opened,) = data_dir_events(cluster, node)
        assert opened[0] == "Opened"
        old_worker = opened[1]

        node.proc.send_signal(signal.SIGHUP)
        cluster.wait_until(
            lambda: len(data_dir_events(cluster, node)) >= 3,
            30,
            "the new worker opening the data directory",
        )
        assert data_dir_events(cluster, node)[:3] == [
            ("Opened", old_worker),
            ("Closed", old_worker),
            ("Opened", data_dir_events(cluster, node)[2][1]),
        ]
        new_worker = data_dir_events(cluster, node)[2][1]
        assert new_worker != old_worker

        after = cluster.wait_until(
            lambda: cluster.submit(node, "after the reload").ok, 15, "serving again"
        )
        assert after
        status = cluster.status(node)
        assert status["commit_index"] > before["index"]
        cluster.write(node, "count")
        counts = [e for e in cluster.events(node) if e.startswith("Count ")]
        # The state machine kept its messages across the reload.
        assert counts == ["Count 2", "Count 4"], counts
        assert node.running()


def test_a_restart_replays_nothing_and_prints_nothing_again(tmp_path_factory):
    """Commands, a print and a count; every node stopped and started again:
    no Logs or Count line is printed twice, the commit index is kept, and
    the state machine continues where it stopped."""
    with running_cluster(tmp_path_factory, "restart") as cluster:
        leader = cluster.leader()
        for text in ("one", "two", "three"):
            cluster.write(leader, text)
        cluster.write(leader, "print")
        counted = cluster.write(leader, "count")
        cluster.wait_applied(counted["index"], cluster.nodes)
        committed = {
            n.address: cluster.status(n)["commit_index"] for n in cluster.nodes
        }

        for node in cluster.nodes:
            assert cluster.stop(node), node.address
        for node in cluster.nodes:
            cluster.start_node(node)
        leader = cluster.leader(timeout=20)
        for node in cluster.nodes:
            status = cluster.wait_until(
                lambda node=node: cluster.try_status(node), 20, "serving"
            )
            # Applied state is on disk: the node starts where it stopped.
            assert status["last_applied"] >= committed[node.address], node.address
            assert status["commit_index"] >= committed[node.address], node.address
        again = cluster.write(leader, "count")
        cluster.wait_applied(again["index"], cluster.nodes)

        for node in cluster.nodes:
            restarted = cluster.events(node)
            assert not [e for e in restarted if e.startswith("Logs [")], node.address
            events = cluster.events(node, all_incarnations=True)
            assert events.count("Logs [one two three print]") == 1, node.address
            assert [e for e in events if e.startswith("Count ")] == [
                "Count 5",
                "Count 6",
            ], node.address
