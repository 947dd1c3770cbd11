"""manage.py recover (issue 13): two of three servers lost for good; the
survivor, recovered on its own, leads a new configuration, keeps what it
had, takes two new servers and commits."""

import signal

import pytest

from .harness import LocalCluster, manage, one_line_failure

# About a minute each on 2 cores: make slow (RAFT_SLOW=1), not the default run.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_survivor_of_a_lost_majority_forms_a_new_cluster(tmp_path_factory):
    cluster = LocalCluster(5, base_dir=tmp_path_factory.mktemp("recover"), members=3)
    try:
        cluster.start_members()
        leader = cluster.leader()
        written = [cluster.write(leader, f"before-{n}") for n in range(5)]
        cluster.wait_applied(written[-1]["index"], cluster.nodes[:3])
        survivor = cluster.others(leader)[0]
        args = ("recover", "--data-dir", str(survivor.data_dir),
                "--members", survivor.address)  # fmt: skip
        running = manage(*args, "--yes")
        assert running.returncode != 0 and "stop the node first" in running.stderr

        for node in cluster.nodes[:3]:
            if node is not survivor:
                cluster.kill(node, signal.SIGKILL)
        cluster.stop(survivor)
        plan = manage(*args)
        assert plan.returncode != 0 and "--yes" in plan.stderr
        assert f"voters {survivor.address}" in plan.stdout, plan.stdout
        done = manage(*args, "--yes")
        assert done.returncode == 0, one_line_failure(done)
        assert "Appended" in done.stdout

        cluster.start_node(survivor)
        cluster.wait_until(
            lambda: (cluster.try_status(survivor) or {}).get("role") == "leader",
            30, "the survivor leads",
        )  # fmt: skip
        for node in cluster.nodes[3:]:
            cluster.start_node(node)
            added = manage("addserver", node.address, "-S", survivor.address,
                           "--no-progress", timeout=90)  # fmt: skip
            assert added.returncode == 0, one_line_failure(added)
        after = cluster.write(survivor, "after the recovery")
        group = [survivor, *cluster.nodes[3:]]
        cluster.wait_applied(after["index"], group)
        for node in group:
            commands = [e["command"] for e in cluster.log(node)]
            assert [f"before-{n}" for n in range(5)] == [
                c for c in commands if c.startswith("before-")
            ]
            assert "after the recovery" in commands
    finally:
        cluster.close()
