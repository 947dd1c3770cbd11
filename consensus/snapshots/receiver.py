"""The follower's side of a snapshot transfer: chunks written at their
offsets into a temporary file, resumed after a dropped connection, checked
and published durably before completion is reported. No Django."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .store import SnapshotMeta, SnapshotStore, file_digest
from .wire import SnapshotChunk

logger = logging.getLogger(__name__)


class ChecksumMismatch(Exception):
    """The complete file does not have the announced sha256: discarded."""


@dataclass(frozen=True, slots=True)
class Received:
    """How many bytes of the chunk's snapshot are held (the offset to send
    next), and the snapshot once complete and durable."""

    offset: int
    snapshot: SnapshotMeta | None = None

    @property
    def done(self) -> bool:
        return self.snapshot is not None


@dataclass(frozen=True, slots=True)
class _Transfer:
    # LogCabin's rule: a transfer belongs to one leader term as well as to
    # one snapshot; a new leader starts over even with the same snapshot.
    term: int
    snapshot: SnapshotMeta

    def same(self, chunk: SnapshotChunk) -> bool:
        return self.term == chunk.term and self.snapshot.same_snapshot(chunk.snapshot())


class SnapshotReceiver:
    """One transfer at a time into ``store``.

    Called from request threads (one chunk per InstallSnapshot request),
    never the loop thread: a lock serialises the chunks, and nothing here
    touches the Raft database. ``on_complete(snapshot, chunk)`` runs once
    the file is durable under its own name, before the last chunk is
    answered; the runtime hands the snapshot to its loop there.
    """

    def __init__(
        self,
        store: SnapshotStore,
        on_complete: Callable[[SnapshotMeta, SnapshotChunk], None] | None = None,
        check_file: Callable[[Path, SnapshotMeta], None] | None = None,
    ):
        """``check_file(path, snapshot)`` raises if a complete file whose
        checksum matches is still no snapshot (restore.check_file)."""
        self.store = store
        self._on_complete = on_complete
        self._check_file = check_file
        self._lock = threading.Lock()
        self._transfer: _Transfer | None = None
        self._completed: _Transfer | None = None
        self._reported = False  # on_complete has returned for _completed
        self._fd: int | None = None
        self._offset = 0  # bytes held from 0, contiguous
        # sha256 of bytes 0.._offset while every chunk arrived in order;
        # None once one overlapped (the file is hashed again at the end).
        self._digest = None
        self._path = store.temporary_path("receive")

    def offset(self) -> int:
        """Bytes held of the transfer under way (0 if none)."""
        with self._lock:
            return self._offset if self._transfer is not None else 0

    def receive(self, chunk: SnapshotChunk) -> Received:
        """Write one chunk; raise ChecksumMismatch if it completes a file
        with another checksum (the partial file is discarded)."""
        with self._lock:
            if self._completed is not None and self._completed.same(chunk):
                # The reply to the last chunk was lost and it came again,
                # or on_complete failed and it is to be told again.
                if not self._reported:
                    self._report(self._completed.snapshot, chunk)
                return Received(chunk.size, self._completed.snapshot)
            if self._transfer is None or not self._transfer.same(chunk):
                if self._transfer is not None and chunk.term < self._transfer.term:
                    # A deposed leader's chunk: the newer one's stays.
                    return Received(0)
                self._start(_Transfer(chunk.term, chunk.snapshot()))
            if chunk.offset > self._offset:
                # A gap (a chunk lost, or a transfer started over here):
                # the leader resumes from what is held.
                return Received(self._offset)
            self._write(chunk)
            if not chunk.done:
                return Received(self._offset)
            return Received(self._offset, self._finish(chunk))

    def abandon(self) -> None:
        """Drop a partial transfer (the node stops, or steps down)."""
        with self._lock:
            self._reset()

    def _start(self, transfer: _Transfer) -> None:
        self._reset()
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._transfer = transfer
        self._completed = None
        self._offset = 0
        self._digest = hashlib.sha256()
        logger.info(
            "receiving snapshot %s (%d bytes) from term %d",
            transfer.snapshot.name,
            transfer.snapshot.size,
            transfer.term,
        )

    def _write(self, chunk: SnapshotChunk) -> None:
        written = os.pwrite(self._fd, chunk.data, chunk.offset)
        if written != len(chunk.data):
            raise OSError(f"short write: {written} of {len(chunk.data)} bytes")
        end = chunk.offset + len(chunk.data)
        if chunk.offset == self._offset and self._digest is not None:
            self._digest.update(chunk.data)
        elif end > chunk.offset:
            self._digest = None  # rewritten bytes: hash the file at the end
        self._offset = max(self._offset, end)

    def _finish(self, chunk: SnapshotChunk) -> SnapshotMeta:
        snapshot = self._transfer.snapshot
        if self._digest is not None:
            checksum = self._digest.hexdigest()
        else:
            checksum = file_digest(self._path)[1]
        if self._offset != snapshot.size or checksum != snapshot.checksum:
            self._reset()
            raise ChecksumMismatch(
                f"{snapshot.name}: received sha256 {checksum}, expected"
                f" {snapshot.checksum}; discarded"
            )
        if self._check_file is not None:
            try:
                self._check_file(self._path, snapshot)
            except Exception as exc:
                # Never published: restore would fail on it, and stop the
                # node (at every start, once published).
                self._reset()
                raise ChecksumMismatch(f"{exc}; discarded") from None
        # Durable before anyone hears of it: the data, its name, and the
        # manifest's (SnapshotStore.publish fsyncs the directory).
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        published = self.store.publish(self._path, snapshot)
        self._completed, self._transfer = self._transfer, None
        self._offset = 0
        self._digest = None
        self._reported = False
        logger.info("received snapshot %s", published.name)
        self._report(published, chunk)
        return published

    def _report(self, snapshot: SnapshotMeta, chunk: SnapshotChunk) -> None:
        if self._on_complete is not None:
            self._on_complete(snapshot, chunk)
        self._reported = True

    def _reset(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._path.unlink(missing_ok=True)
        self._transfer = None
        self._offset = 0
        self._digest = None
