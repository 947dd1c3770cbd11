"""A node whose disk fails stops for good, with one line, and acknowledges
nothing it did not persist (issue 9: "if a disk fills or a write fails").

One server on a lazyfs mount (disks.py) that fails every fsync with EIO, as
a dying disk does.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tests.cluster.harness import ROOT, free_ports

from .disks import Disk

pytestmark = pytest.mark.faults

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def wait_serving(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the node exited while starting"
        try:
            if requests.get(url + "/api/status", timeout=1).json().get("leader"):
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no leader at {url} within {START_TIMEOUT_S} s")


def command(url: str, text: str) -> requests.Response | None:
    try:
        return requests.post(url + "/api/commands", json={"command": text}, timeout=5)
    except requests.RequestException:
        return None  # the node went down while answering: not acknowledged


@pytest.mark.parametrize("failure", ["fail fsync EIO", "fail write ENOSPC"])
def test_a_failed_disk_stops_the_node_with_one_line(lazyfs_disks, tmp_path, failure):
    (port,) = free_ports(1)
    disk = Disk(tmp_path / "disk", tmp_path / "data")
    disk.mount()
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runnode", "--port", str(port),
             "--cluster", f":{port}", "--data-dir", str(disk.mountpoint)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_serving(url, proc)
        before = command(url, "before the failure")
        assert before is not None and before.status_code == 200, before
        disk.command(failure)

        after = command(url, "after the failure")
        # Never acknowledged: the entry could not be made durable.
        assert after is None or after.status_code != 200, after.text
        try:
            _, stderr = proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the node still runs {STOP_TIMEOUT_S} s after {failure!r}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        disk.close()

    failures = [line for line in stderr.splitlines() if "error: storage failed" in line]
    assert len(failures) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    # The master stopped (gunicorn's WORKER_BOOT_ERROR) instead of booting a
    # new worker on the failed disk.
    assert proc.returncode == 3, stderr[-3000:]
