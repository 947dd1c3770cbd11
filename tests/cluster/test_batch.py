"""POST /api/commands {"commands": [...]} and clientcommand --file (issue 11):
a batch becomes consecutive entries of one proposal, applied once however
often it is retried, within the API's bounds."""

import uuid

import pytest

from .harness import manage, one_line_failure

pytestmark = pytest.mark.cluster


def test_a_batch_is_consecutive_entries_applied_once(shared_cluster):
    cluster = shared_cluster
    follower = cluster.others(cluster.leader())[0]
    tag = uuid.uuid4().hex[:8]
    commands = [f"batch-{tag}-{n}" for n in range(50)]
    body = {"commands": commands, "client_id": f"batcher-{tag}", "seq": 7}
    r = cluster.post(follower, "/api/commands", body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["forwarded"] is True
    indexes = [entry["index"] for entry in answer["entries"]]
    assert indexes == list(range(indexes[0], indexes[0] + 50))
    # A retry of the whole batch: the same answers, nothing applied twice.
    again = cluster.post(cluster.leader(), "/api/commands", body)
    assert again.status_code == 200, again.text
    assert again.json()["entries"] == answer["entries"]
    cluster.wait_applied(indexes[-1], cluster.nodes)
    log = {e["index"]: e["command"] for e in cluster.log(follower, indexes[0])}
    assert [log[i] for i in indexes] == commands
    assert sum(c.startswith(f"batch-{tag}-") for c in log.values()) == 50
    # The pairs are seq 7..56: a single command with seq 8 is a repeat.
    repeat = cluster.submit(follower, "other", client_id=f"batcher-{tag}", seq=8)
    assert repeat.status_code == 200 and repeat.json()["index"] == indexes[1]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"commands": []}, 400),
        ({"commands": ["x"] * 1001}, 400),
        ({"commands": ["ok", ""]}, 400),
        ({"commands": ["ok", 5]}, 400),
        ({"commands": "not a list"}, 400),
        ({"commands": ["x"], "client_id": "c"}, 400),
        ({"commands": ["x", "y"], "client_id": "c", "seq": 2**62}, 400),
        ({"commands": ["y" * 60_000] * 20}, 413),
    ],
)
def test_a_batch_out_of_bounds_is_refused_whole(shared_cluster, body, status):
    cluster = shared_cluster
    before = cluster.status(cluster.leader())["last_log_index"]
    r = cluster.post(cluster.leader(), "/api/commands", body)
    assert r.status_code == status, r.text
    assert r.json()["error"] in ("bad_request", "too_large"), r.text
    assert cluster.status(cluster.leader())["last_log_index"] == before


def test_clientcommand_file_commits_every_line_in_batches(shared_cluster, tmp_path):
    cluster = shared_cluster
    tag = uuid.uuid4().hex[:8]
    lines = [f"line-{tag}-{n}" for n in range(1500)]
    path = tmp_path / "commands.txt"
    path.write_text("\n".join(lines[:700]) + "\n\n" + "\n".join(lines[700:]) + "\n")
    follower = cluster.others(cluster.leader())[0]
    done = manage("clientcommand", "--file", str(path), "-S", follower.address)
    assert done.returncode == 0, one_line_failure(done)
    out = done.stdout.strip().splitlines()
    assert len(out) == 2, out  # 1000 + 500: the blank line is skipped
    assert out[0].startswith("Committed 1000 commands at indexes ")
    assert out[1].startswith("Committed 500 commands at indexes ")
    assert "forwarded to leader" in out[0]
    first = int(out[0].split("indexes ")[1].split("-")[0])
    last = int(out[1].split("indexes ")[1].split("-")[1].split(" ")[0])
    cluster.wait_applied(last, cluster.nodes)
    log = [e["command"] for e in cluster.log(follower, first) if e["index"] <= last]
    assert log == lines
