"""The history of key-value operations a fault run records (CONTRACT.md,
"Key-value store"), in the form the linearizability and stale-read checks
read. Plain data, no I/O.

A workload records one ``KvOp`` per operation, as ``workload.Op`` does for
commands: filled in before it is sent (``invoke``), then completed with what
the answer said. From the HTTP answer:

=====================================  ==============================
answer                                 ``outcome`` and output fields
=====================================  ==============================
200 to a GET                           ``OK``, ``value``, ``revision``,
                                       ``applied_index``
200 to a PUT or DELETE                 ``OK``, ``revision``
404 ``not_found``                      ``NOT_FOUND``
412 ``precondition_failed``            ``PRECONDITION_FAILED``,
                                       ``revision`` = ``current_revision``
400, 413, 503, nothing sent            ``FAIL`` (known to have changed
                                       nothing, as ``workload.FAIL``)
timeout, lost connection, 504, other   ``UNKNOWN``
=====================================  ==============================

A PUT's ``value`` is its input; a GET's is its output. ``prev_revision`` set
makes a put or delete a compare-and-set. Each attempt of a retried write
(same ``client_id``/``seq``, at most once by the contract) may be recorded
as an op of its own with ``request`` set to ``"<client_id>:<seq>"``:
``merge_retries`` folds them into the one operation they are. A workload
should write values unique per key: a read then names the put it saw, and
a put whose answer was lost gets the revision that read shows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, replace

# Kinds. A put or delete with ``prev_revision`` is the compare-and-set form
# (cas-put, cas-delete).
PUT = "put"
GET = "get"
DELETE = "delete"
KINDS = (PUT, GET, DELETE)

# Outcomes; OK, FAIL and UNKNOWN are spelt as in workload.py.
OK = "ok"
NOT_FOUND = "not_found"
PRECONDITION_FAILED = "precondition_failed"
FAIL = "fail"
UNKNOWN = "unknown"
DEFINITE = (OK, NOT_FOUND, PRECONDITION_FAILED)
OUTCOMES = (*DEFINITE, FAIL, UNKNOWN)

# GET consistency levels.
LINEARIZABLE = "linearizable"
LEADER = "leader"
STALE = "stale"


@dataclass(frozen=True)
class KvOp:
    """One client operation on one key. Times are seconds since the history
    began, on one monotonic clock."""

    process: str  # the client (session) that sent it
    kind: str  # PUT, GET or DELETE
    key: str
    invoke: float
    complete: float | None = None  # None while in flight (then UNKNOWN)
    outcome: str = UNKNOWN
    value: str | None = None  # PUT: the value sent; GET: the value read
    prev_revision: int | None = None  # compare-and-set: 0 means "absent"
    # OK: the revision written (PUT, DELETE) or read (GET);
    # PRECONDITION_FAILED: the key's current_revision (0 if absent).
    revision: int | None = None
    consistency: str = LINEARIZABLE  # GET only
    applied_index: int | None = None  # GET: the answering server's
    # The session asked that its reads of a key never go back to a lower
    # revision than it has read before (monotonic reads).
    monotonic: bool = False
    request: str | None = None  # "<client_id>:<seq>" of a write, for retries
    node: str | None = None  # the server it was sent to; for people only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    @property
    def is_cas(self) -> bool:
        return self.prev_revision is not None

    @property
    def is_write(self) -> bool:
        return self.kind != GET

    @property
    def indeterminate(self) -> bool:
        return self.outcome == UNKNOWN

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> KvOp:
        return cls(**data)

    def __str__(self):
        return describe(self)


def describe(op: KvOp) -> str:
    """One readable line, such as
    ``c1 cas-put x='a' if@3 -> ok @7 [1.200, 1.310]``."""
    kind = f"cas-{op.kind}" if op.is_cas else op.kind
    parts = [op.process, kind, op.key]
    if op.kind == PUT:
        parts[-1] += f"={op.value!r}"
    if op.is_cas:
        parts.append(f"if@{op.prev_revision}")
    if op.kind == GET and op.consistency != LINEARIZABLE:
        parts.append(f"({op.consistency})")
    if op.outcome == OK and op.kind == GET:
        result = f"ok {op.value!r} @{op.revision}"
    elif op.outcome == OK:
        result = f"ok @{op.revision}"
    elif op.outcome == PRECONDITION_FAILED:
        result = f"precondition_failed, current @{op.revision}"
    else:
        result = op.outcome
    if op.applied_index is not None:
        result += f" applied_index={op.applied_index}"
    end = "..." if op.complete is None else f"{op.complete:.3f}"
    return f"{' '.join(parts)} -> {result} [{op.invoke:.3f}, {end}]"


def merge_retries(ops: list[KvOp]) -> tuple[list[KvOp], list[str]]:
    """Fold the attempts of each retried write into one operation, from the
    first attempt's invocation to the answer that settled it; and list the
    requests whose attempts were answered differently (at most once means
    a retry of an applied write gets the first answer again)."""
    attempts: dict[str, list[KvOp]] = defaultdict(list)
    merged: list[KvOp] = []
    for op in ops:
        if op.request is None:
            merged.append(op)
        else:
            attempts[op.request].append(op)
    problems = []
    for request, group in attempts.items():
        group.sort(key=lambda op: op.invoke)
        answered = [op for op in group if op.outcome in DEFINITE]
        answers = {(op.outcome, op.value, op.revision) for op in answered}
        if len(answers) > 1:
            listed = "; ".join(describe(op) for op in answered)
            problems.append(f"request {request} answered differently: {listed}")
        if answered:
            settled = answered[0]
        elif any(op.outcome == UNKNOWN for op in group):
            # An attempt that timed out may still apply, whatever a later
            # attempt's 503 said about itself.
            settled = replace(group[-1], outcome=UNKNOWN)
        else:
            settled = group[-1]
        merged.append(replace(settled, invoke=group[0].invoke))
    merged.sort(key=lambda op: op.invoke)
    return merged, problems
