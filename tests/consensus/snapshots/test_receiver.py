"""SnapshotReceiver: chunks at their offsets, resume after a lost chunk,
start over for a new snapshot or a new leader term, and a checksum checked
before the file is published durably and completion reported."""

import hashlib
import os
import random
from dataclasses import replace

import pytest

from consensus.snapshots import SnapshotStore
from consensus.snapshots.receiver import ChecksumMismatch, SnapshotReceiver
from consensus.snapshots.store import SnapshotMeta
from consensus.snapshots.wire import SnapshotChunk

LEADER, ME = "127.0.0.1:9990", "127.0.0.1:9991"
CHUNK = 100_000


def snapshot_bytes(size=350_000, seed=1) -> tuple[SnapshotMeta, bytes]:
    data = random.Random(seed).randbytes(size)
    meta = SnapshotMeta(
        last_included_index=500,
        last_included_term=2,
        configuration='{"voters":["127.0.0.1:9990"],"learners":[]}',
        size=size,
        checksum=hashlib.sha256(data).hexdigest(),
    )
    return meta, data


def chunk(meta, data, offset, term=4, size=CHUNK) -> SnapshotChunk:
    piece = data[offset : offset + size]
    return SnapshotChunk(
        term=term,
        source=LEADER,
        dest=ME,
        last_included_index=meta.last_included_index,
        last_included_term=meta.last_included_term,
        configuration=meta.configuration,
        configuration_index=meta.configuration_index,
        size=meta.size,
        checksum=meta.checksum,
        offset=offset,
        data=piece,
        done=offset + len(piece) == meta.size,
    )


@pytest.fixture
def completed():
    return []


@pytest.fixture
def receiver(tmp_path, completed):
    return SnapshotReceiver(
        SnapshotStore(tmp_path), lambda meta, c: completed.append((meta, c))
    )


def send_all(receiver, meta, data, start=0, term=4):
    offset = start
    while True:
        received = receiver.receive(chunk(meta, data, offset, term))
        if received.done:
            return received
        offset = received.offset


def test_chunks_in_order_complete_a_durable_snapshot(receiver, completed):
    meta, data = snapshot_bytes()
    offsets = []
    for offset in range(0, meta.size, CHUNK):
        received = receiver.receive(chunk(meta, data, offset))
        offsets.append(received.offset)
    assert offsets == [100_000, 200_000, 300_000, 350_000]
    assert received.done and received.snapshot.same_snapshot(meta)
    store = receiver.store
    assert store.list() == [received.snapshot]
    assert store.data_path(meta).read_bytes() == data
    assert [m for m, _ in completed] == [received.snapshot]
    assert completed[0][1].source == LEADER and completed[0][1].term == 4
    assert not [p for p in store.directory.iterdir() if p.name.startswith("tmp-")]


def test_a_gap_is_answered_with_the_offset_held(receiver):
    """A chunk past what is held (one was lost) is not written; the reply
    tells the leader where to resume."""
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0))
    assert receiver.receive(chunk(meta, data, 200_000)).offset == 100_000
    assert receiver.receive(chunk(meta, data, 100_000)).offset == 200_000
    assert send_all(receiver, meta, data, 200_000).done
    assert receiver.store.data_path(meta).read_bytes() == data


def test_a_resent_chunk_is_written_again_and_the_file_still_checks(receiver):
    """A chunk whose reply was lost comes again: rewritten in place."""
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0))
    receiver.receive(chunk(meta, data, 100_000))
    assert receiver.receive(chunk(meta, data, 100_000)).offset == 200_000
    assert receiver.receive(chunk(meta, data, 0, size=50_000)).offset == 200_000
    assert send_all(receiver, meta, data, 200_000).snapshot is not None


def test_a_new_leader_sender_resumes_where_the_follower_is(receiver):
    """A sender starting at 0 for the transfer under way is told the offset
    held, and skips what was already sent."""
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0))
    receiver.receive(chunk(meta, data, 100_000))
    assert receiver.receive(chunk(meta, data, 0)).offset == 200_000


def test_a_new_snapshot_starts_over(receiver, completed):
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0))
    receiver.receive(chunk(meta, data, 100_000))
    newer, newer_data = snapshot_bytes(seed=2)
    newer = replace(newer, last_included_index=900)
    # Mid-way through the new one: not written, the leader starts at 0.
    assert receiver.receive(chunk(newer, newer_data, 200_000)).offset == 0
    assert receiver.receive(chunk(newer, newer_data, 0)).offset == 100_000
    assert send_all(receiver, newer, newer_data, 100_000).done
    assert [m.last_included_index for m in receiver.store.list()] == [900]


def test_a_new_leader_term_starts_over_with_the_same_snapshot(receiver):
    """LogCabin's rule: a transfer belongs to one leader's term."""
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0, term=4))
    receiver.receive(chunk(meta, data, 100_000, term=4))
    assert receiver.receive(chunk(meta, data, 200_000, term=5)).offset == 0
    assert receiver.receive(chunk(meta, data, 0, term=5)).offset == 100_000


def test_a_deposed_leaders_chunk_does_not_disturb_the_transfer(receiver):
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0, term=5))
    assert receiver.receive(chunk(meta, data, 100_000, term=4)).offset == 0
    assert receiver.receive(chunk(meta, data, 100_000, term=5)).offset == 200_000


def test_a_corrupted_chunk_fails_the_checksum_and_nothing_is_installed(
    receiver, completed
):
    meta, data = snapshot_bytes()
    receiver.receive(chunk(meta, data, 0))
    bad = bytearray(data)
    bad[150_000] ^= 0x01
    receiver.receive(chunk(meta, bytes(bad), 100_000))
    receiver.receive(chunk(meta, data, 200_000))
    with pytest.raises(ChecksumMismatch):
        receiver.receive(chunk(meta, data, 300_000))
    assert receiver.store.list() == [] and completed == []
    assert list(receiver.store.directory.iterdir()) == []
    # The leader starts over, and a clean copy installs.
    assert receiver.receive(chunk(meta, data, 300_000)).offset == 0
    assert send_all(receiver, meta, data).done


def test_a_corrupted_resent_chunk_is_caught_by_hashing_the_file(receiver):
    """After an out-of-order write the running hash is dropped; the whole
    file is hashed at the end."""
    meta, data = snapshot_bytes()
    bad = bytearray(data)
    bad[10] ^= 0x01
    receiver.receive(chunk(meta, data, 0))
    receiver.receive(chunk(meta, bytes(bad), 0))
    receiver.receive(chunk(meta, data, 100_000))
    receiver.receive(chunk(meta, data, 200_000))
    with pytest.raises(ChecksumMismatch):
        receiver.receive(chunk(meta, data, 300_000))
    assert receiver.store.list() == []


def test_the_last_chunk_again_is_answered_done(receiver, completed):
    """The reply to the last chunk was lost: it is not sent all over."""
    meta, data = snapshot_bytes()
    first = send_all(receiver, meta, data)
    again = receiver.receive(chunk(meta, data, 300_000))
    assert again.done and again.snapshot == first.snapshot
    assert len(completed) == 1


def test_completion_is_reported_only_once_file_and_names_are_durable(
    tmp_path, monkeypatch
):
    """fsync the data, rename it, fsync the directory, the same for the
    manifest; only then is the runtime told."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        target = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        # The directory, or a temporary file named tmp-<label>-<pid>-<tid>.
        events.append("fsync " + "-".join(target.split("-")[:2]))
        real_fsync(fd)

    def rename(source, target):
        events.append(f"rename {os.path.basename(target)}")
        real_rename(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    receiver = SnapshotReceiver(
        SnapshotStore(tmp_path), lambda meta, c: events.append("completed")
    )
    meta, data = snapshot_bytes()
    send_all(receiver, meta, data)
    assert events == [
        "fsync tmp-receive",
        "rename snap-500-2.sqlite3",
        "fsync snapshots",
        "fsync tmp-manifest",
        "rename snap-500-2.json",
        "fsync snapshots",
        "completed",
    ]


def test_a_failed_completion_is_reported_again_with_the_last_chunk(tmp_path):
    """If the runtime could not take the snapshot (on_complete raised), the
    leader's resend of the last chunk tells it again."""
    calls = []

    def on_complete(meta, c):
        calls.append(meta)
        if len(calls) == 1:
            raise RuntimeError("inbox closed")

    receiver = SnapshotReceiver(SnapshotStore(tmp_path), on_complete)
    meta, data = snapshot_bytes()
    for offset in (0, 100_000, 200_000):
        receiver.receive(chunk(meta, data, offset))
    with pytest.raises(RuntimeError):
        receiver.receive(chunk(meta, data, 300_000))
    assert receiver.receive(chunk(meta, data, 300_000)).done
    assert receiver.receive(chunk(meta, data, 300_000)).done
    assert len(calls) == 2


def test_a_file_that_is_no_snapshot_is_never_published(tmp_path, completed):
    """Issue 10: a forged snapshot of any bytes, with their own checksum,
    was published and restored, and restore failing stopped the node (at
    every start, once published). The file is checked before publishing."""
    from consensus.snapshots.restore import check_file

    store = SnapshotStore(tmp_path)
    receiver = SnapshotReceiver(
        store, lambda meta, c: completed.append(meta), check_file
    )
    meta, data = snapshot_bytes(size=1000)
    with pytest.raises(ChecksumMismatch):
        receiver.receive(chunk(meta, data, 0, size=1000))
    assert store.list() == [] and completed == []
    assert receiver.offset() == 0
