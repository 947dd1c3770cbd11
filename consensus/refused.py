"""Refused: the answer of an entry that committed but changed nothing,
decided in apply from the replicated state alone, so every server refuses
the same entries (consensus/access.py, consensus/kv.py)."""

from __future__ import annotations

from dataclasses import dataclass

# Reasons, as the API's error codes name them.
NOT_FOUND = "not_found"
CONFLICT = "conflict"
PRECONDITION_FAILED = "precondition_failed"


@dataclass(frozen=True, slots=True)
class Refused:
    """``reason``: NOT_FOUND, CONFLICT or PRECONDITION_FAILED;
    ``current_revision``: a key's revision for PRECONDITION_FAILED (0 if
    absent)."""

    reason: str
    detail: str
    current_revision: int | None = None
