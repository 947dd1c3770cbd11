"""raftclient.Client and manage.py kv against a real cluster (issue 12):
writes and reads through any server, a server list with a dead first
server, paging, watches, and the command's lines and exit codes."""

import itertools
import queue
import threading
import uuid

import pytest

from raftclient import Client, Event, Item, NotFound, PreconditionFailed

from .conftest import running_cluster
from .harness import free_ports, manage, one_line_failure

pytestmark = pytest.mark.cluster


def fresh(name: str) -> str:
    return f"{name}/{uuid.uuid4().hex[:8]}"


def addresses(cluster, nodes=None):
    return [n.address for n in (nodes or cluster.nodes)]


def test_put_get_cas_delete_through_a_follower(shared_cluster):
    cluster = shared_cluster
    follower = cluster.others(cluster.leader())[0]
    key = fresh("client/ä ö?&%41#")
    with Client([f":{follower.port}"], timeout=15) as client:
        put = client.put(key, "v1")
        assert (put.key, put.value) == (key, "v1")
        for node in cluster.nodes:
            with Client(node.address, timeout=15) as reader:
                for consistency in ("linearizable", "leader"):
                    got = reader.get(key, consistency)
                    assert (got.value, got.revision) == ("v1", put.revision)
                    assert got.applied_index >= put.revision
        with pytest.raises(PreconditionFailed) as raised:
            client.cas(key, "v2", prev_revision=0)
        assert raised.value.current_revision == put.revision
        swapped = client.cas(key, "v2", prev_revision=put.revision)
        assert swapped.revision > put.revision
        assert client.get(key) == Item(key, "v2", swapped.revision,
                                       client.get(key).applied_index)  # fmt: skip
        with pytest.raises(PreconditionFailed):
            client.delete(key, prev_revision=put.revision)
        assert client.delete(key) > swapped.revision
        with pytest.raises(NotFound):
            client.get(key)
        with pytest.raises(NotFound):
            client.delete(key)
        assert client.submit("I like beer.").forwarded is True


def test_a_dead_first_server_is_skipped(shared_cluster):
    cluster = shared_cluster
    (dead,) = free_ports(1)
    key = fresh("skip")
    with Client([f":{dead}", *addresses(cluster)], timeout=15) as client:
        revision = client.put(key, "x").revision
        assert client.server != f"127.0.0.1:{dead}"
        assert client.get(key).revision == revision


def test_list_pages_through_every_key(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("clist") + "/"
    names = ["b", "a", "é", "a/x", "c"]
    with Client(addresses(cluster), timeout=15) as client:
        for name in names:
            client.put(prefix + name, name.upper())
        found = list(client.list(prefix, page=2))
    assert [i.key[len(prefix) :] for i in found] == sorted(
        names, key=lambda n: n.encode()
    )
    assert all(i.value == i.key[len(prefix) :].upper() for i in found)


def test_watch_yields_changes_in_order_from_a_revision(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("cwatch") + "/"
    with Client(addresses(cluster), timeout=15) as client:
        start = client.put(prefix + "before", "0").revision
        a = client.put(prefix + "a", "1").revision
        gone = client.delete(prefix + "a")
        # A follower answers the watch: it has applied them by now or waits.
        follower = cluster.others(cluster.leader())[1]
        with Client(follower.address, timeout=15) as watcher:
            events = list(
                itertools.islice(watcher.watch(prefix, after=start, timeout=5), 2)
            )
    assert events == [
        Event("put", prefix + "a", "1", a),
        Event("delete", prefix + "a", None, gone),
    ]


def test_watch_sees_changes_made_after_it_started(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("clive") + "/"
    seen = queue.Queue()
    with Client(addresses(cluster), timeout=15) as watcher:
        after = watcher.put(prefix + "start", "0").revision

        def watch():
            for event in itertools.islice(watcher.watch(prefix, after, timeout=2), 3):
                seen.put(event)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        with Client(list(reversed(addresses(cluster))), timeout=15) as writer:
            revisions = [writer.put(prefix + str(i), str(i)).revision for i in range(3)]
        thread.join(timeout=30)
    got = [seen.get_nowait() for _ in range(seen.qsize())]
    assert [(e.key, e.revision) for e in got] == [
        (prefix + str(i), revisions[i]) for i in range(3)
    ]


def test_a_watch_resumes_on_another_server_when_its_own_dies(tmp_path_factory):
    with running_cluster(tmp_path_factory, "kvwatch") as cluster:
        leader = cluster.leader()
        first, second = cluster.others(leader)
        prefix = "w/"
        with Client([first.address, second.address, leader.address],
                    timeout=15) as client:  # fmt: skip
            start = client.put(prefix + "start", "0").revision
            events = client.watch(prefix, after=start, timeout=2)
            one = client.put(prefix + "1", "1").revision
            assert next(events).revision == one
            assert client.server == first.address
            cluster.kill(first)
            two = client.put(prefix + "2", "2").revision
            three = client.put(prefix + "3", "3").revision
            assert [next(events).revision for _ in range(2)] == [two, three]
            assert client.server != first.address


# --- the command ----------------------------------------------------------------


def ok(result) -> list[str]:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    return result.stdout.splitlines()


def test_kv_command_put_get_list_del(shared_cluster):
    cluster = shared_cluster
    leader = cluster.leader()
    follower = cluster.others(leader)[0]
    key = fresh("cli")
    [line] = ok(manage("kv", "put", key, "hello world", "-S", f":{follower.port}"))
    assert line.startswith(f"put {key} revision ")
    revision = int(line.rsplit(" ", 1)[1])
    [line] = ok(manage("kv", "get", key, "--consistency", "leader", "-S",
                       follower.address))  # fmt: skip
    assert line.startswith(f"{key} = hello world (revision {revision}, applied ")
    [line] = ok(manage("kv", "put", key, "again", "--prev-revision", str(revision),
                       "-S", leader.address))  # fmt: skip
    second = int(line.rsplit(" ", 1)[1])
    assert ok(manage("kv", "list", "--prefix", key, "-S", leader.address)) == [
        f"{key} = again (revision {second})"
    ]
    failed = one_line_failure(manage("kv", "put", key, "x", "--prev-revision",
                                     str(revision), "-S", leader.address))  # fmt: skip
    assert failed.endswith(
        f"precondition failed: the key's revision is {second} (not {revision})"
    )
    [line] = ok(manage("kv", "del", key, "-S", f":{follower.port}"))
    assert line.startswith(f"deleted {key} revision ")
    failed = one_line_failure(manage("kv", "get", key, "-S", leader.address))
    assert failed.endswith(f"not found: no key {key}")
    failed = one_line_failure(manage("kv", "del", key, "-S", leader.address))
    assert failed.endswith(f"not found: no key {key}")


def test_kv_command_watch_prints_count_events(shared_cluster):
    cluster = shared_cluster
    prefix = fresh("cliwatch") + "/"
    with Client(addresses(cluster), timeout=15) as client:
        after = client.put(prefix + "start", "0").revision
        a = client.put(prefix + "a", "1").revision
        gone = client.delete(prefix + "a")
    watcher = cluster.others(cluster.leader())[1]
    lines = ok(manage("kv", "watch", "--prefix", prefix, "--after", str(after),
                      "--count", "2", "-S", f":{watcher.port}"))  # fmt: skip
    assert lines == [
        f"put {prefix}a = 1 (revision {a})",
        f"delete {prefix}a (revision {gone})",
    ]


def test_kv_command_against_dead_server_is_one_line():
    (dead,) = free_ports(1)
    for argv in (["get", "k"], ["put", "k", "v"], ["list"], ["watch"], ["del", "k"]):
        line = one_line_failure(manage("kv", *argv, "-S", f":{dead}"))
        assert "unreachable" in line and "connection refused" in line, line
