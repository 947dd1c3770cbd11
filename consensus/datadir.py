"""One process per data directory: an exclusive flock(2) on ``<dir>/LOCK``.

Two runtimes on one database could each grant a vote in the same term
(Raft Figure 2 allows one), or interleave their log writes. The lock is per
open file description, so a second holder waits or is refused whether it
is in another process or in this one. The kernel drops it when the holder
exits, however it exits. Imports no Django.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "LOCK"


class DataDirectoryInUse(Exception):
    def __init__(self, data_dir: Path, pid: int | None):
        self.data_dir, self.pid = data_dir, pid
        owner = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"data directory {data_dir} is in use by another process ({owner})"
        )


class DataDirectoryDamaged(Exception):
    """The data directory does not hold a state a node could have written
    (e.g. a compacted log whose snapshot file was deleted)."""


class DataDirLock:
    """The exclusive lock on a data directory, held until release() or the
    process's exit."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self, timeout: float = 0.0, owner_pid: int | None = None, poll: float = 0.05
    ) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for a holder to
        let go; raise DataDirectoryInUse, naming the holder, if it does not.
        ``owner_pid`` is the pid recorded for others to name (default: this
        process's)."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DataDirectoryInUse(self.data_dir, _read_pid(fd)) from None
                    # flock has no timeout of its own; a holder that is
                    # shutting down (a gunicorn reload) lets go within seconds.
                    time.sleep(poll)
            pid = os.getpid() if owner_pid is None else owner_pid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None  # the holder has not written its pid yet
