"""The runtime's client side: request threads propose entries (commands,
batches, key-value writes, state parts' entries, users and tokens) and wait
for the leader to apply them. The loop thread takes the inbox items below
(NodeRuntime._run_once, _propose)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .core.messages import EntryType
from .core.node import Proposal
from .errors import CommandLost, CommandTimeout, EntryRefused, SessionExpired
from .parts import app_command
from .refused import Refused
from .sessions import Expired
from .slots import Slot, Then
from .status import CommandResult


def wall_clock_ms() -> int:
    """The time a leader stamps on the commands it appends (ms since the
    epoch); client sessions end by it (consensus/sessions.py)."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Propose:
    proposal: Proposal
    slot: Slot | Then


@dataclass(slots=True)
class _ProposeBatch:
    # Proposed together, so that they become consecutive entries.
    items: list[_Propose]


class SubmitRuntimeMixin:
    """NodeRuntime's proposing entry points; uses its inbox."""

    def submit_command(
        self,
        command: str,
        client_id: str | None = None,
        seq: int | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Propose a command and block until the leader applied it.

        Raises NotLeader (nothing appended), CommandTimeout (unknown
        outcome), CommandLost (known not committed) or SessionExpired (the
        pair's session has ended: not applied). A repeat of an applied
        (client_id, seq) returns the first answer.
        """
        # Stamped here, read by the core only if this node leads.
        proposal = Proposal(command, client_id, seq, timestamp_ms=wall_clock_ms())
        return self._submit(proposal, timeout)

    def submit_commands(
        self,
        commands: list[str],
        client_id: str | None = None,
        seq: int | None = None,
        timeout: float | None = None,
    ) -> list[CommandResult]:
        """Propose ``commands`` as consecutive entries of one proposal (with
        ``client_id``, command i carries ``seq`` + i) and block until the
        leader applied them all. Raises as submit_command does: NotLeader
        (nothing appended), SessionExpired if any pair's session has ended,
        CommandLost only if every command of the batch was lost, else
        CommandTimeout (some may have committed)."""
        now = wall_clock_ms()
        items = [
            _Propose(
                Proposal(
                    command,
                    client_id,
                    None if seq is None else seq + n,
                    timestamp_ms=now,
                ),
                Slot(),
            )
            for n, command in enumerate(commands)
        ]
        self._inbox.put(_ProposeBatch(items))
        deadline = None if timeout is None else time.monotonic() + timeout
        results, lost = [], 0
        for item in items:
            remaining = None
            if deadline is not None:
                remaining = max(0.0, deadline - time.monotonic())
            if not item.slot.wait(remaining):
                raise CommandTimeout(f"not all committed within {timeout} s")
            if isinstance(item.slot.error, CommandLost):
                lost += 1
                continue
            results.append(self._result(item.slot))
        if lost == len(items):
            raise CommandLost("overwritten by a newer leader's entries")
        if lost:
            raise CommandTimeout(
                f"{lost} of {len(items)} commands were overwritten by a newer "
                "leader's entries, the others committed"
            )
        return results

    def submit_kv(
        self,
        operation: str,
        client_id: str | None = None,
        seq: int | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Propose a KV entry (consensus/kv.py) and block until the leader
        applied it; its index is the key's new revision. Raises as
        submit_command does, and EntryRefused if it changed nothing."""
        proposal = Proposal(
            operation, client_id, seq, type=EntryType.KV, timestamp_ms=wall_clock_ms()
        )
        return self._submit(proposal, timeout)

    def submit_app(
        self,
        part: str,
        data,
        client_id: str | None = None,
        seq: int | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Propose an APP entry for the project's state part ``part``
        (consensus/parts.py) and block until the leader applied it. Raises
        as submit_kv does."""
        proposal = Proposal(
            app_command(part, data),
            client_id,
            seq,
            type=EntryType.APP,
            timestamp_ms=wall_clock_ms(),
        )
        return self._submit(proposal, timeout)

    def submit_access(
        self, operation: str, requested_by: str | None, timeout: float | None = None
    ) -> CommandResult:
        """Propose an ACCESS entry (consensus/access.py: ``operation``, and
        who asked) and block until the leader applied it. Raises as
        submit_command does, and EntryRefused if it changed nothing."""
        proposal = Proposal(
            operation, requested_by, type=EntryType.ACCESS, timestamp_ms=wall_clock_ms()
        )
        return self._submit(proposal, timeout)

    def propose_command(
        self,
        command: str,
        client_id: str | None,
        seq: int | None,
        then: Callable[[CommandResult | Exception], None],
    ) -> None:
        """Propose a command without waiting: ``then`` gets, on the loop
        thread, what submit_command would return or raise (never
        CommandTimeout: the caller keeps its own deadline)."""
        proposal = Proposal(command, client_id, seq, timestamp_ms=wall_clock_ms())
        self._inbox.put(
            _Propose(proposal, Then(lambda s: then(self._outcome(s)), self._due))
        )

    @classmethod
    def _outcome(cls, slot) -> CommandResult | Exception:
        try:
            return cls._result(slot)
        except Exception as exc:
            return exc

    def _submit(self, proposal: Proposal, timeout: float | None) -> CommandResult:
        slot = Slot()
        self._inbox.put(_Propose(proposal, slot))
        if not slot.wait(timeout):
            raise CommandTimeout(f"not committed within {timeout} s")
        return self._result(slot)

    @staticmethod
    def _result(slot: Slot) -> CommandResult:
        """A done slot's outcome: its CommandResult, or what it failed with."""
        if slot.error is not None:
            raise slot.error
        if isinstance(slot.value, Expired):
            raise SessionExpired(slot.value.detail)
        if isinstance(slot.value, Refused):
            refused = slot.value
            raise EntryRefused(refused.reason, refused.detail, refused.current_revision)
        return CommandResult(slot.value.index, slot.value.term)
