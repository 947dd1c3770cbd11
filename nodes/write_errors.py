"""How a write's failure on the runtime becomes the API's error answer, for
every kind of entry a client appends (commands, key-value writes, state
parts' entries, users and tokens): one place for the contract's words on
what is known of the outcome."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from consensus.errors import CommandLost, CommandTimeout, EntryRefused, SessionExpired

from . import errors


@dataclass(frozen=True)
class Outcomes:
    """The words for one kind of write: ``unknown`` after a timeout (504),
    ``lost`` when another leader's entry replaced it (503), and the
    ``expired`` suffix added to a 409 for a session that has ended."""

    unknown: str
    lost: str
    expired: str = ""


COMMAND = Outcomes(
    unknown="the command may or may not commit.",
    lost="The command was appended but replaced by another leader's entry: "
    "it did not commit and nothing of it remains. Retry.",
)
BATCH = Outcomes(
    unknown="each command may or may not commit: retry with the same client_id "
    "and seq.",
    lost="The commands were appended but replaced by another leader's entries: "
    "none committed. Retry.",
    expired=" (other commands of the batch may have been applied)",
)


def entry(noun: str) -> Outcomes:
    """The words for a write that takes effect or not: a key-value write,
    a state part's entry, a change of users."""
    return Outcomes(
        unknown=f"the {noun} may or may not take effect.",
        lost=f"The {noun} was appended but replaced by another leader's entry: "
        "it did not take effect. Retry.",
    )


@contextmanager
def write_errors(outcomes: Outcomes, timeout_s: float):
    """The runtime's failures of a write, raised as the API's errors; an
    EntryRefused (it committed and changed nothing) as 404, 412 (with the
    key's current revision) or 409."""
    try:
        yield
    except CommandTimeout as exc:
        detail = f" ({exc})" if outcomes is BATCH else ""
        raise errors.TimedOut(
            f"Not committed within {timeout_s:g} s{detail}; {outcomes.unknown}"
        ) from None
    except CommandLost:
        raise errors.Unavailable(outcomes.lost, leader=None) from None
    except SessionExpired as exc:
        # Never applied: the pair's answer is no longer kept (README,
        # Client sessions).
        raise errors.Conflict(f"{exc}{outcomes.expired}") from None
    except EntryRefused as exc:
        if exc.reason == "not_found":
            raise errors.NotFound(f"{exc}; nothing was changed.") from None
        if exc.reason == "precondition_failed":
            raise errors.PreconditionFailed(
                f"{exc}; nothing was changed.",
                current_revision=exc.current_revision or 0,
            ) from None
        raise errors.Conflict(f"{exc}; nothing was changed.") from None
