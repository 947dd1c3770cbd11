"""A data directory's snapshot files: ``snapshots/snap-<index>-<term>.sqlite3``
beside a JSON manifest of the same name, published durably (fsync the file,
rename it from a temporary name, fsync the directory). No Django here."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SNAPSHOT_DIR = "snapshots"
# Temporary files start with "tmp-": list() never sees them and
# clean_temporary() removes them (what a crash left half written).
TEMP_PREFIX = "tmp-"
_MANIFEST = re.compile(r"^snap-(\d+)-(\d+)\.json$")
HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers and how to check its file."""

    last_included_index: int
    last_included_term: int
    # The latest configuration applied at last_included_index, as
    # consensus.core.configuration.Configuration.to_json writes it.
    configuration: str | None
    size: int  # bytes of the data file
    checksum: str  # sha256 of the data file, hex
    created: float = 0.0  # time.time() when it was published
    # The index of the CONFIG entry ``configuration`` came from (0: none).
    configuration_index: int = 0

    @property
    def name(self) -> str:
        return f"snap-{self.last_included_index}-{self.last_included_term}"

    def same_snapshot(self, other: SnapshotMeta) -> bool:
        """Whether both describe the same file (the creation time aside)."""
        return (
            self.last_included_index,
            self.last_included_term,
            self.size,
            self.checksum,
        ) == (
            other.last_included_index,
            other.last_included_term,
            other.size,
            other.checksum,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SnapshotMeta:
        return cls(**json.loads(text))


class SnapshotStore:
    """The snapshots of one data directory.

    A snapshot exists once its manifest does: the data file is renamed into
    place and the directory fsynced first, then the manifest. Thread-safe
    for readers; one writer at a time per snapshot name (take() on the
    snapshot thread, a receiver in a request thread).
    """

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / SNAPSHOT_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        # A follower's own take and a leader's transfer may publish the same
        # index and term at once: one manifest must describe one file.
        self._publishing = threading.Lock()

    # --- paths -------------------------------------------------------------

    def data_path(self, meta: SnapshotMeta) -> Path:
        return self.directory / f"{meta.name}.sqlite3"

    def manifest_path(self, meta: SnapshotMeta) -> Path:
        return self.directory / f"{meta.name}.json"

    def temporary_path(self, label: str) -> Path:
        """A temporary file name unique to this process and thread."""
        return self.directory / (
            f"{TEMP_PREFIX}{label}-{os.getpid()}-{threading.get_ident()}"
        )

    # --- reading -----------------------------------------------------------

    def list(self) -> list[SnapshotMeta]:
        """Every published snapshot, oldest (lowest index) first."""
        found = []
        for path in self.directory.iterdir():
            if not _MANIFEST.match(path.name):
                continue
            try:
                meta = SnapshotMeta.from_json(path.read_text())
            except (OSError, ValueError, TypeError):
                continue  # removed meanwhile, or not ours
            data = self.data_path(meta)
            if data.exists() and data.stat().st_size == meta.size:
                found.append(meta)
        return sorted(found, key=lambda m: (m.last_included_index, m.created))

    def latest(self) -> SnapshotMeta | None:
        snapshots = self.list()
        return snapshots[-1] if snapshots else None

    def find(self, index: int) -> SnapshotMeta | None:
        """The newest snapshot whose last included index is ``index``."""
        matches = [m for m in self.list() if m.last_included_index == index]
        return matches[-1] if matches else None

    def open_chunks(
        self, meta: SnapshotMeta, offset: int = 0, size: int = 1 << 20
    ) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) pieces of the data file from ``offset``, at most
        ``size`` bytes each, until its end."""
        with open(self.data_path(meta), "rb") as f:
            f.seek(offset)
            while offset < meta.size:
                data = f.read(min(size, meta.size - offset))
                if not data:
                    raise OSError(f"{meta.name} ends before {meta.size} bytes")
                yield offset, data
                offset += len(data)

    def verify(self, meta: SnapshotMeta) -> bool:
        """Whether the data file still has its size and checksum."""
        path = self.data_path(meta)
        try:
            size, checksum = file_digest(path)
        except OSError:
            return False
        return size == meta.size and checksum == meta.checksum

    # --- writing -----------------------------------------------------------

    def publish(self, temporary: Path, meta: SnapshotMeta) -> SnapshotMeta:
        """Make a complete, fsynced temporary data file the snapshot
        ``meta``; return once it is durable. Replaces a snapshot of the
        same name."""
        with self._publishing:
            return self._publish(temporary, meta)

    def _publish(self, temporary: Path, meta: SnapshotMeta) -> SnapshotMeta:
        if self.manifest_path(meta).exists():
            # A snapshot of this index and term again (the same committed
            # prefix, so the same state): withdraw the old one first, so
            # its manifest never describes the new file.
            self.manifest_path(meta).unlink()
            fsync_directory(self.directory)
        os.rename(temporary, self.data_path(meta))
        fsync_directory(self.directory)
        manifest = self.temporary_path("manifest")
        write_durably(manifest, meta.to_json().encode())
        os.rename(manifest, self.manifest_path(meta))
        fsync_directory(self.directory)
        return meta

    def remove_older_than(self, index: int) -> list[SnapshotMeta]:
        """Delete every snapshot whose last included index is below
        ``index``, manifest first (so none is ever half listed)."""
        removed = []
        for meta in self.list():
            if meta.last_included_index >= index:
                continue
            self.manifest_path(meta).unlink(missing_ok=True)
            fsync_directory(self.directory)
            self.data_path(meta).unlink(missing_ok=True)
            removed.append(meta)
        if removed:
            fsync_directory(self.directory)
        return removed

    def clean_temporary(self) -> None:
        """Remove what an interrupted take or transfer left, and data files
        without a manifest (call before anything writes here)."""
        listed = {self.data_path(m).name for m in self.list()}
        for path in self.directory.iterdir():
            orphan = path.suffix == ".sqlite3" and path.name not in listed
            if path.name.startswith(TEMP_PREFIX) or orphan:
                path.unlink(missing_ok=True)
        fsync_directory(self.directory)

    def take(self, db_path: Path | str, **kwargs) -> SnapshotMeta:
        """See consensus.snapshots.take.take_snapshot."""
        from .take import take_snapshot

        return take_snapshot(self, db_path, **kwargs)


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make the directory's entries (a rename, a new or removed file)
    durable: a renamed file's own fsync does not cover its name."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
