"""consensus/history.py: the dashboard's series from one sample a second."""

from consensus.history import StatusHistory
from consensus.status import NodeStatus, PeerInfo


def status(commit, term, leader, match):
    peers = tuple(PeerInfo(p, True, m, m + 1, 0.0) for p, m in match.items())
    return NodeStatus("a:1", "leader", term, leader, commit, commit, commit, (), peers)


def test_series_per_second_with_leader_changes_and_lag(monkeypatch):
    statuses = iter([
        status(10, 1, "a:1", {"b:2": 10}),
        status(30, 1, "a:1", {"b:2": 25}),
        status(30, 2, None, {}),
        status(40, 2, "c:3", {"b:2": 40}),
    ])  # fmt: skip
    clock = iter([100.0, 101.0, 102.0, 104.0])
    monkeypatch.setattr("consensus.history.time.time", lambda: next(clock))
    history = StatusHistory(lambda: next(statuses))
    for _ in range(4):
        history.sample()
    series = history.series()
    assert series["time"] == [101.0, 102.0, 104.0]
    assert series["commits_per_s"] == [20.0, 0.0, 5.0]
    assert series["leader_changes"] == [0, 1, 1]
    assert series["lag"] == {"b:2": [5, None, 0]}


def test_no_status_no_sample():
    history = StatusHistory(lambda: None)
    history.sample()
    assert history.series()["time"] == []
