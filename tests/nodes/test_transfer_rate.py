"""The rate and time left that addserver and backup show on a terminal
(nodes/transfer_rate.py), and the lines they show with them."""

import hashlib

import pytest
from django.core.management import call_command

from nodes.catchup_progress import with_rate
from nodes.management.commands import backup
from nodes.transfer_rate import TransferRate, format_seconds, rate_and_eta

from .stub import Reply, StubServer


def test_the_rate_is_over_the_last_window_not_since_the_start():
    meter = TransferRate(window_s=5)
    meter.add(0, 0, 1000)
    meter.add(10, 100, 1000)  # 10 units/s so far
    assert meter.rate() == pytest.approx(10)
    for t in range(11, 21):
        meter.add(t, 100 + 50 * (t - 10), 1000)  # then 50 units/s
    assert meter.rate() == pytest.approx(50)
    assert meter.seconds_left() == pytest.approx((1000 - 600) / 50)


def test_a_stall_shows_in_the_rate_once_it_fills_the_window():
    meter = TransferRate(window_s=2)
    for t in range(5):
        meter.add(t, 10 * t, 100)
    for t in range(5, 8):
        meter.add(t, 40, 100)
    assert meter.rate() == 0
    assert meter.seconds_left() is None  # nothing moves: no estimate


def test_no_estimate_without_a_total_or_before_a_rate():
    meter = TransferRate()
    meter.add(0, 0, None)
    assert meter.rate() is None and meter.seconds_left() is None
    meter.add(1, 10, None)
    assert meter.rate() == 10 and meter.seconds_left() is None
    fresh = TransferRate()
    fresh.add(0, 5, 100)
    assert fresh.rate() is None and fresh.seconds_left() is None


def test_finished_work_has_no_time_left():
    meter = TransferRate()
    meter.add(0, 100, 100)
    assert meter.seconds_left() == 0
    meter.add(1, 120, 100)
    assert meter.seconds_left() == 0


def test_work_that_starts_over_starts_a_new_rate():
    meter = TransferRate()
    meter.add(0, 0, 100)
    meter.add(1, 80, 100)
    meter.add(2, 10, 100)  # a transfer sent again from the start
    assert meter.rate() is None
    meter.add(3, 30, 100)
    assert meter.rate() == 20


@pytest.mark.parametrize(
    "seconds, text",
    [
        (None, "?"),
        (0, "0 s"),
        (59.4, "59 s"),
        (125, "2 min 05 s"),
        (3720, "1 h 02 min"),
    ],
)
def test_time_left_reads_like_a_clock(seconds, text):
    assert format_seconds(seconds) == text


def test_rate_and_eta_is_empty_until_a_rate_is_known():
    meter = TransferRate()
    meter.add(0, 0, 10e6)
    assert rate_and_eta(meter, "MB", 1e6) == ""
    meter.add(2, 4e6, 10e6)
    assert rate_and_eta(meter, "MB", 1e6) == ", 2.0 MB/s, 3 s left"


def test_addserver_shows_the_rate_of_the_phase_it_is_in():
    meters = {}
    snapshot = {"snapshot_bytes_sent": 0, "snapshot_size": 30_000_000}
    assert with_rate("L", snapshot, 50, meters, 0.0) == "L"
    snapshot = {"snapshot_bytes_sent": 10_000_000, "snapshot_size": 30_000_000}
    assert with_rate("L", snapshot, 50, meters, 1.0) == "L, 10.0 MB/s, 2 s left"
    # The log phase has a rate of its own, in entries.
    assert with_rate("L", {"match_index": 100}, 5100, meters, 2.0) == "L"
    line = with_rate("L", {"match_index": 1100}, 5100, meters, 3.0)
    assert line == "L, 1000 entries/s, 4 s left"


def test_backup_shows_size_rate_and_time_left_on_stderr(tmp_path, capsys):
    body = b"x" * (3 * backup.CHUNK + 100)
    stub = StubServer(
        Reply(
            200,
            body,
            headers={
                "Content-Type": "application/vnd.sqlite3",
                "X-Raft-Snapshot-Sha256": hashlib.sha256(body).hexdigest(),
                "X-Raft-Snapshot-Index": "7",
                "X-Raft-Snapshot-Term": "2",
            },
        )
    )
    try:
        out = tmp_path / "b.sqlite3"
        call_command("backup", "--out", str(out), "-S", stub.address, "--progress")
    finally:
        stub.close()
    assert out.read_bytes() == body
    err = capsys.readouterr().err
    assert err.startswith("\rbackup: ") and err.endswith("\n")
    last = err.rstrip().rsplit("\r", 1)[1]
    assert last.startswith("backup: 3.0 of 3.0 MB (100%)"), last
    assert last.endswith(" MB/s, 0 s left"), last


def test_backup_is_quiet_off_a_terminal(tmp_path, capsys):
    body = b"y" * 1000
    stub = StubServer(
        Reply(
            200,
            body,
            headers={"X-Raft-Snapshot-Sha256": hashlib.sha256(body).hexdigest()},
        )
    )
    try:
        call_command("backup", "--out", str(tmp_path / "b"), "-S", stub.address)
    finally:
        stub.close()
    assert capsys.readouterr().err == ""


def test_a_backup_line_without_a_size_has_no_estimate():
    meter = TransferRate()
    meter.add(0, 0, None)
    meter.add(1, 2 * backup.MB, None)
    assert backup.progress_line(meter) == "backup: 2.0 MB, 2.0 MB/s, ? left"
