"""A FUSE file system that forgets what was not fsynced, for power cuts (in the
manner of Jepsen's LazyFS). One process serves one mount:

    python -m tests.faults.lazyfs BACKING MOUNTPOINT OWNER_PID

Every name and every byte lives in the BACKING directory, whose contents are
"the disk": what survives a power cut. Writes since a file's last fsync or
fdatasync are held in this process's memory (a page cache of 4 KiB pages per
file, with the file's logical size), visible to reads through the mount and
written to the backing file, then fsynced there, only by fsync. A file created
here is "new" until it or its directory is fsynced (ext4 commits a new file's
name with its first fsync). Unlink, rename, mkdir and chmod go to the backing
directory at once (durable immediately: a model simpler than a real disk; a
power cut never brings a removed file back). close() syncs nothing.

Commands, one per line on stdin; one JSON answer per line on stdout:

- ``cut``: the power cut. Drop every unsynced page and size change, remove the
  files still "new", then refuse every further request (EIO); the owner then
  unmounts, and a fresh process mounts the backing directory again. Answers
  what was dropped.
- ``fsync honest|lie``: ``lie`` makes fsync return success while writing
  nothing (everything is then lost at the next cut): to prove the checker
  notices lost writes.
- ``fail none|write ENOSPC|write EIO|fsync EIO|...``: from now on every
  write (or fsync) fails with that error, as a full or failing disk would.
  A failed fsync leaves the file's unsynced pages readable but never written
  (Linux marks them clean: "fsyncgate"), so only a cut restores the truth.
- ``stats``: counters.

The first line on stdout, ``{"mounted": ...}``, says the mount is up.
Kernel page cache, attributes and mmap (SQLite maps the WAL's ``-shm``) work
as on any FUSE mount without direct_io; a cut is followed by an unmount, so
nothing the kernel cached outlives it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import sys
import threading

PAGE = 4096
FSNAME_PREFIX = "rftflazy-"  # fsname=rftflazy-<owner pid>: leftovers are found by it
SUBTYPE = "rftflazy"


class _File:
    """One file's unsynced state: the pages written since its last fsync
    (their whole content as the mount shows it) and its logical size."""

    __slots__ = ("size", "pages", "dirty", "floor")

    def __init__(self, size: int):
        self.size = size
        self.pages: dict[int, bytearray] = {}
        self.dirty: set[int] = set()
        # Set by a truncation below the backing size: backing bytes from
        # here on are no longer part of the file.
        self.floor: int | None = None


class LazyState:
    """The file system's logic, without FUSE (unit-testable on a directory)."""

    def __init__(self, backing: str):
        self.backing = os.path.realpath(backing)
        self.lock = threading.RLock()
        self.files: dict[int, _File] = {}  # backing inode -> unsynced state
        self.fds: dict[int, int] = {}  # fh -> backing fd
        self.new: set[int] = set()  # inodes created and not yet fsynced
        self.new_paths: dict[int, str] = {}  # their current backing paths
        self.names: dict[int, str] = {}  # inode -> name last opened by
        self.fsync_lies = False
        self.fail: dict[str, int] = {}  # "write"/"fsync" -> errno
        self.dead = False
        self.counters = {
            "writes": 0,
            "bytes_written": 0,
            "fsyncs": 0,
            "fsyncs_lied": 0,
            "failed": 0,
            "cuts": 0,
        }

    # -- helpers -------------------------------------------------------

    def real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _check(self):
        if self.dead:
            raise OSError(errno.EIO, "power is off")

    def _inode(self, path: str | None, fh: int | None) -> tuple[int, int | None]:
        """(backing inode, backing fd or None)."""
        if fh is not None and fh in self.fds:
            fd = self.fds[fh]
            return os.fstat(fd).st_ino, fd
        return os.lstat(self.real(path)).st_ino, None

    def _entry(self, ino: int, fd: int) -> _File:
        entry = self.files.get(ino)
        if entry is None:
            entry = self.files[ino] = _File(os.fstat(fd).st_size)
        return entry

    def _page(self, entry: _File, fd: int, number: int) -> bytearray:
        page = entry.pages.get(number)
        if page is None:
            start = number * PAGE
            data = (
                os.pread(fd, PAGE, start)
                if entry.floor is None or (start < entry.floor)
                else b""
            )
            if entry.floor is not None and start + len(data) > entry.floor:
                data = data[: max(0, entry.floor - start)]
            page = bytearray(data.ljust(PAGE, b"\0"))
            entry.pages[number] = page
        return page

    # -- data ----------------------------------------------------------

    def open(self, path: str, flags: int, mode: int = 0o644, create=False) -> int:
        with self.lock:
            self._check()
            real = self.real(path)
            trunc = flags & os.O_TRUNC
            flags &= ~(os.O_APPEND | os.O_TRUNC | getattr(os, "O_DIRECT", 0))
            existed = os.path.exists(real)
            fd = os.open(real, flags | (os.O_CREAT if create else 0), mode)
            if create and not existed:
                ino = os.fstat(fd).st_ino
                # A new file: nothing of an earlier one with this inode
                # number may show through.
                self.files.pop(ino, None)
                self.new.add(ino)
                self.new_paths[ino] = real
            self.fds[fd] = fd
            self.names[os.fstat(fd).st_ino] = path.lstrip("/")
            if trunc:
                self.truncate(path, 0, fd)
            return fd

    def release(self, fh: int) -> None:
        with self.lock:
            fd = self.fds.pop(fh, None)
            if fd is None:
                return
            st = os.fstat(fd)
            os.close(fd)
            # The last descriptor of an unlinked file: it is gone, and what
            # was written to it after the unlink (the kernel writes back a
            # mapped -shm that SQLite has just removed) must not be kept
            # for the next file that gets its inode number.
            if st.st_nlink == 0 and not any(
                os.fstat(other).st_ino == st.st_ino for other in self.fds.values()
            ):
                self.files.pop(st.st_ino, None)
                self.new.discard(st.st_ino)
                self.new_paths.pop(st.st_ino, None)

    def read(self, path, size: int, offset: int, fh: int) -> bytes:
        with self.lock:
            self._check()
            fd = self.fds[fh]
            entry = self.files.get(os.fstat(fd).st_ino)
            if entry is None:
                return os.pread(fd, size, offset)
            end = min(offset + size, entry.size)
            out = bytearray()
            position = offset
            while position < end:
                number, within = divmod(position, PAGE)
                take = min(PAGE - within, end - position)
                page = entry.pages.get(number)
                if page is None:
                    page = self._page(entry, fd, number)
                    if number not in entry.dirty:
                        del entry.pages[number]  # a clean page: not kept
                out += page[within : within + take]
                position += take
            return bytes(out)

    def write(self, path, data: bytes, offset: int, fh: int) -> int:
        with self.lock:
            self._check()
            if "write" in self.fail:
                self.counters["failed"] += 1
                raise OSError(self.fail["write"], "injected write failure")
            fd = self.fds[fh]
            entry = self._entry(os.fstat(fd).st_ino, fd)
            position, view = offset, memoryview(data)
            while view:
                number, within = divmod(position, PAGE)
                take = min(PAGE - within, len(view))
                page = self._page(entry, fd, number)
                page[within : within + take] = view[:take]
                entry.dirty.add(number)
                view = view[take:]
                position += take
            entry.size = max(entry.size, offset + len(data))
            self.counters["writes"] += 1
            self.counters["bytes_written"] += len(data)
            return len(data)

    def truncate(self, path, length: int, fh=None) -> None:
        with self.lock:
            self._check()
            if "write" in self.fail:
                self.counters["failed"] += 1
                raise OSError(self.fail["write"], "injected write failure")
            ino, fd = self._inode(path, fh)
            own = fd is None
            if own:
                fd = os.open(self.real(path), os.O_RDONLY)
            try:
                entry = self._entry(ino, fd)
                if length < entry.size:
                    number, within = divmod(length, PAGE)
                    if within:
                        page = self._page(entry, fd, number)
                        page[within:] = bytes(PAGE - within)
                        entry.dirty.add(number)
                    for n in [n for n in entry.pages if n * PAGE >= length]:
                        del entry.pages[n]
                        entry.dirty.discard(n)
                    entry.floor = (
                        length if entry.floor is None else min(entry.floor, length)
                    )
                entry.size = length
            finally:
                if own:
                    os.close(fd)

    def fsync(self, path, datasync: int, fh: int) -> None:
        with self.lock:
            self._check()
            self.counters["fsyncs"] += 1
            fd = self.fds[fh]
            ino = os.fstat(fd).st_ino
            entry = self.files.get(ino)
            if "fsync" in self.fail:
                self.counters["failed"] += 1
                if entry is not None:
                    entry.dirty.clear()  # Linux: the pages are now "clean"
                raise OSError(self.fail["fsync"], "injected fsync failure")
            if self.fsync_lies:
                self.counters["fsyncs_lied"] += 1
                return
            if entry is not None:
                # Linux syncs the file's pages through any descriptor of
                # it, a read-only one too: write them through one that can.
                out = fd
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
                    out = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
                try:
                    if entry.floor is not None:
                        os.ftruncate(out, entry.floor)
                    for number in sorted(entry.dirty):
                        start = number * PAGE
                        if start >= entry.size:
                            continue
                        os.pwrite(out, entry.pages[number][: entry.size - start], start)
                    if os.fstat(out).st_size != entry.size:
                        os.ftruncate(out, entry.size)
                finally:
                    if out != fd:
                        os.close(out)
                del self.files[ino]
            os.fsync(fd)
            if ino in self.new:
                # ext4 commits a new file's name with its first fsync.
                self.new.discard(ino)
                where = self.new_paths.pop(ino, None)
                if where is not None:
                    _fsync_dir(os.path.dirname(where))

    def fsyncdir(self, path) -> None:
        with self.lock:
            self._check()
            if self.fsync_lies:
                self.counters["fsyncs_lied"] += 1
                return
            real = self.real(path)
            for ino, where in list(self.new_paths.items()):
                if os.path.dirname(where) == real.rstrip("/"):
                    self.new.discard(ino)
                    del self.new_paths[ino]
            _fsync_dir(real)

    def getattr(self, path, fh=None) -> dict:
        with self.lock:
            self._check()
            if fh is not None and fh in self.fds:
                st = os.fstat(self.fds[fh])
            else:
                st = os.lstat(self.real(path))
            attrs = {
                key: getattr(st, key)
                for key in (
                    "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                    "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_ino",
                )
            }  # fmt: skip
            for key in ("st_atime", "st_mtime", "st_ctime"):
                attrs[key] = attrs.pop(key + "_ns")
            entry = self.files.get(st.st_ino)
            if entry is not None:
                attrs["st_size"] = entry.size
            return attrs

    # -- names ---------------------------------------------------------

    def unlink(self, path) -> None:
        with self.lock:
            self._check()
            real = self.real(path)
            st = os.lstat(real)
            os.unlink(real)
            if st.st_nlink <= 1:
                self.files.pop(st.st_ino, None)
                self.new.discard(st.st_ino)
                self.new_paths.pop(st.st_ino, None)

    def rename(self, old, new) -> None:
        with self.lock:
            self._check()
            target = self.real(new)
            try:
                replaced = os.lstat(target).st_ino
            except FileNotFoundError:
                replaced = None
            os.rename(self.real(old), target)
            if replaced is not None:
                self.files.pop(replaced, None)
            for ino, where in list(self.new_paths.items()):
                if where == self.real(old):
                    self.new_paths[ino] = target

    # -- the power cut and its controls --------------------------------

    def cut(self) -> dict:
        with self.lock:
            dropped_pages = sum(len(e.dirty) for e in self.files.values())
            by_file = self._unsynced_by_file()
            resized = sum(1 for e in self.files.values() if e.floor is not None)
            removed = []
            for where in self.new_paths.values():
                try:
                    os.unlink(where)
                    removed.append(os.path.relpath(where, self.backing))
                except OSError:
                    pass
            self.files.clear()
            self.new.clear()
            self.new_paths.clear()
            self.dead = True
            self.counters["cuts"] += 1
            return {
                "cut": True,
                "dropped_pages": dropped_pages,
                "dropped_by_file": by_file,
                "truncations_dropped": resized,
                "files_removed": sorted(removed),
            }

    def _unsynced_by_file(self) -> dict[str, int]:
        return {
            self.names.get(ino, str(ino)): len(entry.dirty)
            for ino, entry in sorted(self.files.items())
            if entry.dirty or entry.floor is not None
        }

    def command(self, line: str) -> dict:
        words = line.split()
        if not words:
            return {"error": "empty command"}
        if words[0] == "cut":
            return self.cut()
        if words[0] == "stats":
            with self.lock:
                unsynced = sum(len(e.dirty) for e in self.files.values())
                return {
                    **self.counters,
                    "unsynced_pages": unsynced,
                    "unsynced_by_file": self._unsynced_by_file(),
                }
        if words[0] == "fsync" and len(words) == 2 and words[1] in ("honest", "lie"):
            with self.lock:
                self.fsync_lies = words[1] == "lie"
            return {"fsync": words[1]}
        if words[0] == "fail":
            with self.lock:
                if words[1:] == ["none"]:
                    self.fail.clear()
                    return {"fail": {}}
                if len(words) == 3 and words[1] in ("write", "fsync"):
                    code = getattr(errno, words[2], None)
                    if isinstance(code, int):
                        self.fail[words[1]] = code
                        return {
                            "fail": {
                                k: errno.errorcode[v] for k, v in self.fail.items()
                            }
                        }
        return {"error": f"unknown command {line.strip()!r}"}


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _operations(state: LazyState):
    """The mfusepy Operations around ``state`` (every OSError becomes its
    errno for the kernel)."""
    import mfusepy

    def guarded(fn):
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except OSError as exc:
                raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

        return call

    class Lazy(mfusepy.Operations):
        use_ns = True

        def init(self, path):
            print(json.dumps({"mounted": sys.argv[2]}), flush=True)

        getattr = staticmethod(guarded(state.getattr))
        read = staticmethod(guarded(state.read))
        write = staticmethod(guarded(state.write))
        truncate = staticmethod(guarded(state.truncate))
        unlink = staticmethod(guarded(state.unlink))
        rename = staticmethod(guarded(state.rename))

        @guarded
        def open(self, path, flags):
            return state.open(path, flags)

        @guarded
        def create(self, path, mode, fi=None):
            return state.open(path, os.O_RDWR | os.O_CREAT, mode, create=True)

        @guarded
        def release(self, path, fh):
            state.release(fh)
            return 0

        @guarded
        def flush(self, path, fh):
            return 0

        @guarded
        def fsync(self, path, datasync, fh):
            state.fsync(path, datasync, fh)
            return 0

        @guarded
        def fsyncdir(self, path, datasync, fh):
            state.fsyncdir(path)
            return 0

        @guarded
        def opendir(self, path):
            state._check()
            return 0

        @guarded
        def releasedir(self, path, fh):
            return 0

        @guarded
        def readdir(self, path, fh):
            state._check()
            return [".", "..", *os.listdir(state.real(path))]

        @guarded
        def mkdir(self, path, mode):
            state._check()
            os.mkdir(state.real(path), mode)
            return 0

        @guarded
        def rmdir(self, path):
            state._check()
            os.rmdir(state.real(path))
            return 0

        @guarded
        def chmod(self, path, mode):
            state._check()
            os.chmod(state.real(path), mode)
            return 0

        @guarded
        def chown(self, path, uid, gid):
            state._check()
            os.chown(state.real(path), uid, gid)
            return 0

        @guarded
        def utimens(self, path, times=None):
            state._check()
            os.utime(state.real(path), ns=times)
            return 0

        @guarded
        def access(self, path, amode):
            state._check()
            if not os.access(state.real(path), amode):
                raise OSError(errno.EACCES, "access")
            return 0

        @guarded
        def statfs(self, path):
            st = os.statvfs(state.backing)
            return {
                key: getattr(st, key)
                for key in (
                    "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                    "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
                )
            }  # fmt: skip

    return Lazy()


def _control(state: LazyState) -> None:
    for line in sys.stdin:
        answer = state.command(line)
        print(json.dumps(answer), flush=True)
    # The owner closed our stdin (it died, or is done): nothing is flushed.


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    backing, mountpoint, owner = argv
    import ctypes

    # Die with the test process (the mount is then cleaned up at the next run).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(owner):
        return 1
    import mfusepy

    state = LazyState(backing)
    threading.Thread(target=_control, args=(state,), daemon=True).start()
    mfusepy.FUSE(
        _operations(state),
        mountpoint,
        foreground=True,
        nothreads=True,
        fsname=f"{FSNAME_PREFIX}{owner}",
        subtype=SUBTYPE,
        hard_remove=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
