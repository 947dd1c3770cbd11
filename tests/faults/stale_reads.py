"""The checks of reads that may lag (``consistency=stale``, and ``leader``
unless searched for linearizability): each returns some state its key
really had by the time it answered, and a session that asked for monotonic
reads never goes back. Pure.

Such a read may return any earlier state, so it is checked against the
writes alone rather than placed in an order: its value and revision must
be those of a put invoked before the read completed (one whose answer was
lost counts, its revision unknown unless another write's answer claims
it). A read's ``applied_index`` adds what the answering server had
applied: the state it returns is the last write at or below that index,
so a known write of the key between the two is an error.
"""

from __future__ import annotations

from collections import defaultdict

from .kv_history import (
    DELETE,
    GET,
    LEADER,
    NOT_FOUND,
    OK,
    PUT,
    STALE,
    UNKNOWN,
    KvOp,
    describe,
)


def check_stale_reads(
    ops: list[KvOp], *, levels: tuple[str, ...] = (STALE, LEADER)
) -> list[str]:
    """The problems with the reads at ``levels`` (empty when none), and with
    any read that asked for monotonic reads, one readable line each."""
    writes: dict[str, list[KvOp]] = defaultdict(list)
    by_revision: dict[int, KvOp] = {}  # log indexes: one write each, any key
    for op in ops:
        if op.is_write and op.outcome in (OK, UNKNOWN):
            writes[op.key].append(op)
            if op.outcome == OK:
                by_revision[op.revision] = op
    problems = []
    for read in ops:
        answered = read.kind == GET and read.outcome in (OK, NOT_FOUND)
        if answered and read.consistency in levels:
            problems += _check_read(read, writes[read.key], by_revision)
    problems += _check_monotonic(ops, writes)
    return problems


def _check_read(read: KvOp, writes: list[KvOp], by_revision) -> list[str]:
    before = [w for w in writes if w.invoke <= read.complete]
    applied = read.applied_index
    if read.outcome == NOT_FOUND:
        if applied is None:
            return []  # the initial state, at least
        # The key is absent at ``applied`` only if the last write below
        # it was a delete, perhaps one whose index was lost.
        known = [w for w in before if w.outcome == OK and w.revision <= applied]
        last = max(known, key=lambda w: w.revision, default=None)
        lost_delete = any(w.kind == DELETE and w.outcome == UNKNOWN for w in before)
        if last is not None and last.kind == PUT and not lost_delete:
            return [
                f"{describe(read)}: absent, yet the server had applied "
                f"{describe(last)}"
            ]
        return []
    claimed = by_revision.get(read.revision)
    sources = [
        w
        for w in before
        if w.kind == PUT
        and w.value == read.value
        and (
            w.revision == read.revision
            if w.outcome == OK
            else claimed is None or claimed is w
        )
    ]
    if not sources:
        return [f"{describe(read)}: a state the key never had by then"]
    if applied is None:
        return []
    if read.revision > applied:
        return [f"{describe(read)}: a revision above the server's applied index"]
    newer = [
        w for w in before if w.outcome == OK and read.revision < w.revision <= applied
    ]
    if newer:
        return [
            f"{describe(read)}: the server had applied the later "
            f"{describe(min(newer, key=lambda w: w.revision))}"
        ]
    return []


def _check_monotonic(ops: list[KvOp], writes: dict[str, list[KvOp]]) -> list[str]:
    """Monotonic reads (Terry et al. 1994, session guarantees): a read that
    asks for them returns a revision no lower than any its session read of
    the key before, and not_found only if a delete may have come since."""
    reads: dict[tuple[str, str], list[KvOp]] = defaultdict(list)
    for op in ops:
        if op.kind == GET and op.outcome in (OK, NOT_FOUND):
            reads[op.process, op.key].append(op)
    problems = []
    for (_, key), session in reads.items():
        session.sort(key=lambda op: op.invoke)
        seen, seen_by = 0, None
        for read in session:
            if read.monotonic and seen_by is not None:
                if read.outcome == OK and read.revision < seen:
                    problems.append(
                        f"{describe(read)}: went back from revision {seen}, "
                        f"read by {describe(seen_by)}"
                    )
                elif read.outcome == NOT_FOUND and not _deleted_after(
                    writes[key], seen, read
                ):
                    problems.append(
                        f"{describe(read)}: absent, with no delete after "
                        f"{describe(seen_by)}"
                    )
            if read.outcome == OK and read.revision >= seen:
                seen, seen_by = read.revision, read
    return problems


def _deleted_after(writes: list[KvOp], revision: int, read: KvOp) -> bool:
    """Whether a delete invoked before ``read`` completed may have an index
    above ``revision``."""
    return any(
        w.kind == DELETE
        and w.invoke <= read.complete
        and (w.outcome == UNKNOWN or w.revision > revision)
        for w in writes
    )
