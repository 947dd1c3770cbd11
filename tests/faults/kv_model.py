"""The sequential specification of one key of the key-value store, as the
linearizability search steps it: a register with a revision. Pure.

State: ``(present, value, revision, exact)``. ``revision`` is the log index
of the entry that last wrote the key, a put or a delete, 0 before any write
(a deleted key keeps its delete's index, which only later writes read, as
a lower bound). When a write of unknown outcome is applied its index is not
known, only that it is above the state's: ``exact`` is then False and
``revision`` is the least the index can be; a later read or precondition
that names the index pins it (``exact`` True again).

The rules, for the outputs ``kv_history`` records:

- A write that succeeds gets a revision strictly above the state's:
  revisions are log indexes, and the log orders writes the way they are
  linearized (etcd's mod_revision works the same way).
- A read returns exactly the state: its value and revision, or not_found
  when the key is absent.
- ``prev_revision=n`` holds when the key's current revision is ``n``
  (absent counts as 0); otherwise the answer is 412 with the current
  revision and nothing changes. A delete of an absent key answers 404
  and changes nothing (so does a cas-delete whose precondition holds on an
  absent key, and one with ``n > 0`` may answer either 404 or 412 0: the
  contract leaves the order of those two checks open).
- An operation of unknown outcome may take effect with any output its
  rules allow, or none. Taking no effect is the same as being linearized
  after everything else, so ``step`` offers only its effect, and a read of
  unknown outcome is left out of the search.

Two properties the search relies on: the state's revision never goes down
along an order (``ceiling``), and a state whose revision is a lower bound
accepts whatever the exact states it stands for accept. Revisions are
compared within a key only; that two keys' writes never share an index is
not checked here.
"""

from __future__ import annotations

from typing import NamedTuple

from .kv_history import (
    DELETE,
    GET,
    NOT_FOUND,
    OK,
    PRECONDITION_FAILED,
    PUT,
    UNKNOWN,
    KvOp,
)


class State(NamedTuple):
    present: bool
    value: str | None
    revision: int
    exact: bool = True

    def __str__(self):
        at = f"@{self.revision}" if self.exact else f"@>={self.revision}"
        return f"{self.value!r} {at}" if self.present else f"absent {at}"


INITIAL = State(False, None, 0)


def pin(state: State, revision: int) -> State | None:
    """The state with its revision known to be ``revision``, or None if it
    cannot be."""
    if state.exact:
        return state if state.revision == revision else None
    if revision < state.revision:
        return None
    return state._replace(revision=revision, exact=True)


def current_is(state: State, revision: int) -> State | None:
    """The state, pinned, if its current revision (0 when absent) can be
    ``revision``; else None."""
    if revision == 0:
        return None if state.present else state
    return pin(state, revision) if state.present else None


def _written(state: State, revision: int | None, value: str | None) -> State | None:
    """The state a successful write leaves: at ``revision``, or above the
    current one when the answer was lost."""
    present = value is not None
    if revision is None:
        return State(present, value, state.revision + 1, exact=False)
    # Revisions strictly increase along the log: a write cannot be ordered
    # before one with a higher index.
    if revision <= state.revision:
        return None
    return State(present, value, revision)


def step(state: State, op: KvOp) -> State | None:
    """The state ``op`` leaves when linearized in ``state`` with the output
    it recorded (any it may have had, when UNKNOWN), or None when it cannot
    be linearized there. The model is deterministic: a lost answer leaves
    the new revision as a lower bound instead of a choice of states."""
    outcome = op.outcome
    if op.kind == GET:
        if outcome == OK:
            if not state.present or state.value != op.value:
                return None
            return pin(state, op.revision)
        if outcome == NOT_FOUND:
            return None if state.present else state
        return None
    if outcome == PRECONDITION_FAILED:
        if op.revision == op.prev_revision:
            return None
        return current_is(state, op.revision)
    if outcome == NOT_FOUND:
        # Only a delete answers 404, and only when the key is absent.
        return state if op.kind == DELETE and not state.present else None
    # OK, or UNKNOWN: taking effect, at a revision known only if a read of
    # its value told (linearizability.infer_revisions).
    revision = op.revision
    if op.is_cas:
        state = current_is(state, op.prev_revision)
        if state is None:
            return None
    if op.kind == DELETE and not state.present:
        return None  # a 404, not the recorded OK; no effect if UNKNOWN
    return _written(state, revision, op.value if op.kind == PUT else None)


def has_effect(op: KvOp) -> bool:
    """Whether ``op`` may change the state when linearized: what the search
    must place. Reads, 412s and 404s only constrain where they can go."""
    return op.kind != GET and op.outcome in (OK, UNKNOWN)


def ceiling(op: KvOp) -> int | None:
    """The highest state revision ``op`` can be placed at, with the output
    it recorded (None: no bound). The state's revision never goes down, so
    an order that passes it can never place ``op``: the search stops there
    instead of when it reaches ``op``'s return."""
    if op.outcome == OK:
        if op.kind == GET:
            return op.revision
        if op.is_cas and op.prev_revision:
            return op.prev_revision
        return op.revision - 1
    if op.outcome == PRECONDITION_FAILED and op.revision:
        return op.revision
    return None
