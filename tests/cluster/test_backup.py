"""manage.py backup and restore (issue 13): a backup of a live cluster taken
under writes seeds a new cluster that holds every command acknowledged at
or before the backup's index, and the key-value map, and takes writes."""

import re
import sqlite3
import threading

import pytest
import requests

from .harness import LocalCluster, free_ports, manage, one_line_failure

# About a minute each on 2 cores: make slow (RAFT_SLOW=1), not the default run.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def applied_messages(node) -> set[str]:
    with sqlite3.connect(node.data_dir / "db.sqlite3") as db:
        return {
            row[0] for row in db.execute("SELECT command FROM consensus_appliedmessage")
        }


def test_backup_under_writes_then_restore_a_new_cluster(tmp_path_factory, tmp_path):
    base = tmp_path_factory.mktemp("backup")
    old = LocalCluster(3, base_dir=base / "old")
    new = None
    try:
        old.start().leader(timeout=30)
        leader = old.leader()
        url = leader.base_url + "/api/kv/config"
        assert requests.put(url, json={"value": "kept"}, timeout=15).ok
        acknowledged, stop = [], threading.Event()

        def write():
            n = 0
            while not stop.is_set():
                n += 1
                r = old.submit(leader, f"w-{n}")
                if r.status_code == 200:
                    acknowledged.append((r.json()["index"], f"w-{n}"))

        writer = threading.Thread(target=write)
        writer.start()
        old.wait_until(lambda: len(acknowledged) >= 20, 30, "writes before the backup")
        out = tmp_path / "cluster.backup"
        done = manage("backup", "-S", old.others(leader)[0].address, "--out", str(out))
        old.wait_until(lambda: len(acknowledged) >= 40, 30, "writes after the backup")
        stop.set()
        writer.join(30)
        assert done.returncode == 0, one_line_failure(done)
        index = int(re.search(r"at index (\d+)", done.stdout).group(1))
        assert out.stat().st_size > 0

        new = LocalCluster(3, base_dir=base / "new", ports=free_ports(3))
        members = ",".join(node.address for node in new.nodes)
        for node in new.nodes:
            seeded = manage("restore", str(out), "--data-dir", str(node.data_dir),
                            "--cluster", members)  # fmt: skip
            assert seeded.returncode == 0, one_line_failure(seeded)
        again = manage("restore", str(out), "--data-dir", str(new.nodes[0].data_dir),
                       "--cluster", members)  # fmt: skip
        assert again.returncode != 0 and "already holds" in again.stderr
        new.start().leader(timeout=30)
        before = {command for i, command in acknowledged if i <= index}
        assert before, "no write was acknowledged before the backup's index"
        for node in new.nodes:
            new.wait_until(lambda n=node: new.status(n)["last_applied"] >= index,
                           30, "restored")  # fmt: skip
            assert before <= applied_messages(node), node.address
            got = requests.get(node.base_url + "/api/kv/config", timeout=15).json()
            assert got["value"] == "kept"
        status = new.status(new.leader())
        assert sorted(s["id"] for s in status["servers"]) == sorted(members.split(","))
        after = new.write(new.leader(), "in the new cluster")
        new.wait_applied(after["index"], new.nodes)
    finally:
        old.close()
        if new is not None:
            new.close()
