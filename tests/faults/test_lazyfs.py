"""lazyfs's page-cache model without FUSE: LazyState on a plain directory
(runs everywhere, root or not)."""

import errno
import os

import pytest

from .lazyfs import PAGE, LazyState


def backing_bytes(tmp_path, name="f"):
    path = tmp_path / name
    return path.read_bytes() if path.exists() else None


@pytest.fixture
def fs(tmp_path):
    state = LazyState(str(tmp_path))
    yield state
    for fh in list(state.fds):
        state.release(fh)


def test_unsynced_writes_are_visible_and_lost_at_a_cut(fs, tmp_path):
    fh = fs.open("/f", os.O_RDWR, create=True)
    fs.write("/f", b"hello", 0, fh)
    assert fs.read("/f", 100, 0, fh) == b"hello"
    assert fs.getattr("/f", fh)["st_size"] == 5
    assert backing_bytes(tmp_path) == b""  # on "disk": only the empty file
    fs.fsync("/f", 0, fh)
    assert backing_bytes(tmp_path) == b"hello"
    fs.write("/f", b"J", 0, fh)
    fs.write("/f", b"!", PAGE + 10, fh)
    assert fs.read("/f", 5, 0, fh) == b"Jello"
    assert fs.getattr("/f", fh)["st_size"] == PAGE + 11
    answer = fs.cut()
    assert answer["dropped_pages"] == 2
    assert answer["dropped_by_file"] == {"f": 2}
    assert backing_bytes(tmp_path) == b"hello"
    with pytest.raises(OSError):
        fs.read("/f", 5, 0, fh)  # the power is off


def test_a_new_file_needs_an_fsync_of_itself_or_its_directory(fs, tmp_path):
    for name in ("a", "b", "c"):
        fs.release(fs.open(f"/{name}", os.O_RDWR, create=True))
    fh = fs.open("/a", os.O_RDWR)
    fs.fsync("/a", 1, fh)
    fs.release(fh)
    os.mkdir(tmp_path / "d")
    fs.release(fs.open("/d/e", os.O_RDWR, create=True))
    fs.fsyncdir("/d")
    assert fs.cut()["files_removed"] == ["b", "c"]
    assert sorted(os.listdir(tmp_path)) == ["a", "d"]
    assert os.listdir(tmp_path / "d") == ["e"]


def test_an_fsync_through_a_read_only_descriptor_writes_the_pages(fs, tmp_path):
    """As on Linux, where the page cache is the file's, not the
    descriptor's (the snapshot code fsyncs a finished file that way)."""
    fh = fs.open("/f", os.O_RDWR, create=True)
    fs.write("/f", b"written", 0, fh)
    fs.truncate("/f", 5, fh)
    fs.release(fh)
    reader = fs.open("/f", os.O_RDONLY)
    fs.fsync("/f", 0, reader)
    assert backing_bytes(tmp_path) == b"writt"
    assert fs.cut()["dropped_pages"] == 0


def test_an_unlinked_file_leaves_nothing_for_its_inode_number(fs, tmp_path):
    """SQLite removes a -shm the kernel may still write back through the
    open file: once closed, nothing of it may reach the next file that
    gets its inode number (which then showed the old size)."""
    fh = fs.open("/db-shm", os.O_RDWR, create=True)
    fs.write("/db-shm", b"x" * (8 * PAGE), 0, fh)
    fs.unlink("/db-shm")
    fs.write("/db-shm", b"late", 0, fh)  # the writeback after the unlink
    assert fs.files
    fs.release(fh)
    assert fs.files == {} and fs.new == set()
    fh = fs.open("/manifest", os.O_RDWR, create=True)
    fs.write("/manifest", b"{}", 0, fh)
    assert fs.getattr("/manifest", fh)["st_size"] == 2
    fs.fsync("/manifest", 0, fh)
    assert backing_bytes(tmp_path, "manifest") == b"{}"


def test_truncation_is_unsynced_too_and_never_resurrects_old_bytes(fs, tmp_path):
    (tmp_path / "f").write_bytes(b"x" * (2 * PAGE))
    fh = fs.open("/f", os.O_RDWR)
    fs.truncate("/f", 10, fh)
    assert fs.getattr("/f", fh)["st_size"] == 10
    fs.truncate("/f", 2 * PAGE, fh)  # extended again: zeros, not the old x
    assert fs.read("/f", 2 * PAGE, 0, fh) == b"x" * 10 + bytes(2 * PAGE - 10)
    assert backing_bytes(tmp_path) == b"x" * (2 * PAGE)
    fs.fsync("/f", 0, fh)
    assert backing_bytes(tmp_path) == b"x" * 10 + bytes(2 * PAGE - 10)
    fs.truncate("/f", 3, fh)
    fs.cut()
    assert len(backing_bytes(tmp_path)) == 2 * PAGE


def test_a_lying_fsync_writes_nothing(fs, tmp_path):
    assert fs.command("fsync lie") == {"fsync": "lie"}
    fh = fs.open("/f", os.O_RDWR, create=True)
    fs.write("/f", b"acknowledged", 0, fh)
    fs.fsync("/f", 0, fh)
    fs.fsyncdir("/")
    assert fs.command("stats")["fsyncs_lied"] == 2
    assert fs.cut()["files_removed"] == ["f"]
    assert backing_bytes(tmp_path) is None


def test_injected_failures(fs, tmp_path):
    fh = fs.open("/f", os.O_RDWR, create=True)
    fs.fsync("/f", 0, fh)
    assert fs.command("fail write ENOSPC") == {"fail": {"write": "ENOSPC"}}
    with pytest.raises(OSError) as raised:
        fs.write("/f", b"x", 0, fh)
    assert raised.value.errno == errno.ENOSPC
    fs.command("fail none")
    fs.write("/f", b"lost", 0, fh)
    fs.command("fail fsync EIO")
    with pytest.raises(OSError) as raised:
        fs.fsync("/f", 0, fh)
    assert raised.value.errno == errno.EIO
    fs.command("fail none")
    # As on Linux: the failed pages stay readable but are never written
    # (the size is: the file then holds zeros, as ext4 may leave it).
    assert fs.read("/f", 4, 0, fh) == b"lost"
    fs.fsync("/f", 0, fh)
    assert backing_bytes(tmp_path) == bytes(4)
    assert "error" in fs.command("fail write ENOTANERRNO")
    assert "error" in fs.command("explode")
