"""Each server's data directory on its own lazyfs mount (lazyfs.py): the
power-cut test bed. A Disk owns one backing directory ("the disk"), one
mountpoint (the server's --data-dir) and the FUSE process serving it.

A power cut of a server: SIGKILL it (the caller), then ``Disk.cut()``: the
FUSE process drops what was not fsynced and stops answering, the mount is
unmounted (the kernel's caches of it go too) and a fresh process mounts the
backing directory again, before the server is restarted on it.

Mounts are named ``rftflazy-<pid of the test process>`` (fsname): leftovers
of a killed run (a dead owner) are unmounted at the next start.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import lazyfs

ROOT = Path(__file__).resolve().parents[2]
MOUNT_TIMEOUT_S = 15.0
ANSWER_TIMEOUT_S = 10.0


class DiskError(RuntimeError):
    """A lazyfs mount could not be made, controlled or removed."""


def unavailable_reason() -> str | None:
    """Why lazyfs mounts cannot be made here, or None if they can."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (the kernel or container offers no FUSE)"
    if os.geteuid() != 0:
        return "lazyfs mounts need root (the tests are not running as root)"
    if ctypes.util.find_library("fuse3") is None:
        return (
            "libfuse3 not found: install the Debian package fuse3 "
            "(make test does it when run as root)"
        )
    if importlib.util.find_spec("mfusepy") is None:
        return "the Python package mfusepy is missing (requirements.txt)"
    return None


def _mounts() -> list[tuple[str, str, str]]:
    """(fsname, mountpoint, fstype) of every mount this process sees."""
    rows = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                mountpoint = fields[1].encode().decode("unicode_escape")
                rows.append((fields[0], mountpoint, fields[2]))
    return rows


def _unmount(mountpoint: str) -> bool:
    for argv in (
        ["fusermount3", "-u", mountpoint],
        ["umount", mountpoint],
        ["umount", "-l", mountpoint],
    ):
        if shutil.which(argv[0]) is None:
            continue
        try:
            done = subprocess.run(argv, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            continue
        if done.returncode == 0:
            return True
    return False


def unmount_quietly(mountpoint: str) -> bool:
    return _unmount(mountpoint)


def cleanup_leftovers() -> list[str]:
    """Unmount lazyfs mounts whose owning test process is gone."""
    removed = []
    for fsname, mountpoint, _ in _mounts():
        if not fsname.startswith(lazyfs.FSNAME_PREFIX):
            continue
        owner = fsname[len(lazyfs.FSNAME_PREFIX) :]
        if owner.isdigit() and os.path.exists(f"/proc/{owner}"):
            continue
        if _unmount(mountpoint):
            removed.append(mountpoint)
    return removed


def owned_mounts(pid: int | None = None) -> list[str]:
    name = f"{lazyfs.FSNAME_PREFIX}{pid or os.getpid()}"
    return [m for fsname, m, _ in _mounts() if fsname == name]


class Disk:
    """One lazyfs mount: ``mountpoint`` shows ``backing`` plus what was
    written and not yet fsynced."""

    def __init__(self, backing: Path, mountpoint: Path, fsync: str = "honest"):
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self.fsync_mode = fsync
        self.proc: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()
        self.cuts: list[dict] = []
        self.mount_s: list[float] = []

    def mounted(self) -> bool:
        return str(self.mountpoint) in [m for _, m, _ in _mounts()]

    def mount(self) -> None:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if self.mounted():
            raise DiskError(f"{self.mountpoint} is already mounted")
        started = time.monotonic()
        self._answers = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.lazyfs", str(self.backing),
             str(self.mountpoint), str(os.getpid())],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )  # fmt: skip
        threading.Thread(
            target=self._read, args=(self.proc, self._answers), daemon=True
        ).start()
        first = self._answer(MOUNT_TIMEOUT_S)
        if "mounted" not in first:
            raise DiskError(f"lazyfs on {self.mountpoint} did not mount: {first}")
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not self.mounted():
            if time.monotonic() > deadline:
                raise DiskError(f"{self.mountpoint} is not in the mount table")
            time.sleep(0.02)
        if self.fsync_mode != "honest":
            self.command(f"fsync {self.fsync_mode}")
        self.mount_s.append(time.monotonic() - started)

    @staticmethod
    def _read(proc, answers):
        for line in proc.stdout:
            try:
                answers.put(json.loads(line))
            except ValueError:
                answers.put({"error": f"not JSON: {line.strip()!r}"})
        err = proc.stderr.read() if proc.stderr else ""
        answers.put({"error": f"lazyfs exited {proc.wait()}: {err.strip()[-500:]}"})

    def _answer(self, timeout: float) -> dict:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise DiskError(
                f"lazyfs on {self.mountpoint} did not answer within {timeout} s"
            ) from None

    def command(self, line: str) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            raise DiskError(f"lazyfs on {self.mountpoint} is not running")
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._answer(ANSWER_TIMEOUT_S)
        if "error" in answer:
            raise DiskError(f"lazyfs {line!r}: {answer['error']}")
        return answer

    def cut(self) -> dict:
        """The power cut (its server must be dead): drop what was not
        fsynced, unmount, mount the backing directory afresh."""
        answer = self.command("cut")
        self.unmount()
        self.cuts.append(answer)
        self.mount()
        return answer

    def unmount(self) -> None:
        """Unmount (which ends the FUSE process); nothing is flushed."""
        if self.mounted() and not _unmount(str(self.mountpoint)):
            raise DiskError(f"cannot unmount {self.mountpoint}")
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        """Unmount, whatever state the FUSE process is in."""
        try:
            self.unmount()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self.mounted():
                _unmount(str(self.mountpoint))
