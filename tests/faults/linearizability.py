"""Linearizability of the key-value operations of a history (``kv_history``)
against the model of ``kv_model``, searched per key by ``wgl``, with the
stale reads checked by ``stale_reads``. Pure.

Each key is its own object, and linearizability is local (Herlihy & Wing
1990), so keys are searched apart. An operation of unknown outcome may be
placed anywhere after its invocation, or nowhere (Knossos's and
Porcupine's "info" ops); one that failed with nothing changed (``FAIL``)
is left out, and so is a read whose answer was lost. ``linearizable``
reads are searched; ``stale`` reads are checked apart, and so are
``leader`` reads unless asked otherwise, since a deposed leader that has
not heard so answers from its own state (CONTRACT.md: "without confirming
leadership").

The search is exponential at worst, so it stops after ``max_steps`` and
says "unknown". On a failure it finds the shortest prefix of the history
(by time) that no order explains: the operation whose answer ends it is
the one nothing explains, listed with the operations before it and the
longest order the search could make of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from .kv_history import (
    DEFINITE,
    FAIL,
    GET,
    LEADER,
    LINEARIZABLE,
    OK,
    PUT,
    STALE,
    UNKNOWN,
    KvOp,
    describe,
    merge_retries,
)
from .kv_model import has_effect
from .stale_reads import check_stale_reads
from .violations import NONLINEARIZABLE, RETRY_ANSWER, STALE_READ, Violation
from .wgl import (
    INVALID,
    UNKNOWN_VERDICT,
    VALID,
    Search,
    events_of,
    shortest_failing_prefix,
)

# Enough for the few hundred operations per key of a fault run with a
# handful of clients (they take thousands of steps); a few seconds of work.
DEFAULT_MAX_STEPS = 1_000_000
# The search without pruning that an explanation runs stops after this.
EXPLANATION_STEPS = 20_000
# An explanation lists at most this many operations.
MAX_LISTED = 30


@dataclass
class KeyResult:
    key: str
    verdict: str
    ops: int  # operations searched
    steps: int  # search steps taken, the prefix searches included
    explanation: str = ""

    def __str__(self):
        head = f"key {self.key!r}: {self.verdict} ({self.ops} ops, {self.steps} steps)"
        return head + ("\n" + self.explanation if self.explanation else "")


@dataclass
class KvReport:
    keys: list[KeyResult] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # stale_reads' problems
    retries: list[str] = field(default_factory=list)  # merge_retries' problems

    @property
    def verdict(self) -> str:
        if self.stale or self.retries:
            return INVALID
        verdicts = {result.verdict for result in self.keys}
        for verdict in (INVALID, UNKNOWN_VERDICT):
            if verdict in verdicts:
                return verdict
        return VALID

    def violations(self) -> list[Violation]:
        found = [
            Violation(NONLINEARIZABLE, str(result))
            for result in self.keys
            if result.verdict == INVALID
        ]
        found += [Violation(STALE_READ, detail) for detail in self.stale]
        found += [Violation(RETRY_ANSWER, detail) for detail in self.retries]
        return found

    def __str__(self):
        lines = [f"key-value history: {self.verdict}"]
        lines += [str(r) for r in self.keys if r.verdict != VALID]
        lines += [str(v) for v in self.violations() if v.kind != NONLINEARIZABLE]
        return "\n".join(lines)


def check_kv(
    ops: list[KvOp],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    leader_reads_linearizable: bool = False,
) -> KvReport:
    """Every check of a history of key-value operations: retries folded,
    each key searched, stale (and leader) reads checked apart."""
    merged, retries = merge_retries(ops)
    searched = (LINEARIZABLE, LEADER) if leader_reads_linearizable else (LINEARIZABLE,)
    stale_levels = () if leader_reads_linearizable else (LEADER,)
    report = KvReport(retries=retries)
    report.keys = check_linearizable(merged, max_steps=max_steps, levels=searched)
    report.stale = check_stale_reads(merged, levels=(STALE, *stale_levels))
    return report


def check_linearizable(
    ops: list[KvOp],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    levels: tuple[str, ...] = (LINEARIZABLE,),
) -> list[KeyResult]:
    """One result per key, reads of the other consistency levels left out;
    ``max_steps`` bounds each key's search."""
    by_key: dict[str, list[KvOp]] = defaultdict(list)
    for op in ops:
        if op.kind != GET or op.consistency in levels:
            by_key[op.key].append(op)
    return [check_key(by_key[key], max_steps=max_steps) for key in sorted(by_key)]


def check_key(ops: list[KvOp], *, max_steps: int = DEFAULT_MAX_STEPS) -> KeyResult:
    """Whether one key's operations (every read among them linearizable)
    have an order that the model accepts and real time allows."""
    key = ops[0].key if ops else ""
    relevant = infer_revisions([op for op in ops if _searched(op)])
    events = events_of(relevant, lambda op: op.outcome in DEFINITE)
    search = Search(relevant, events, None, max_steps)
    result = KeyResult(key, search.run(), len(relevant), search.steps)
    if result.verdict == UNKNOWN_VERDICT:
        result.explanation = (
            f"gave up after {max_steps} steps; the longest order found "
            f"placed {len(search.longest)} of {len(relevant)} operations"
        )
        culprit = _impossible_read(relevant)
        if culprit is not None:
            # A read no write explains fails every order: say so, though
            # the search could not finish.
            result.verdict = INVALID
            lines = [f"nothing explains: {describe(relevant[culprit])}"]
            lines += [f"  hint: {h}" for h in _hints(relevant, culprit, ops)]
            result.explanation = "\n".join([*lines, result.explanation])
    elif result.verdict == INVALID:
        search = shortest_failing_prefix(relevant, events, search, max_steps)
        result.steps += search.spent
        # Without the ceilings the longest order goes on past the point
        # where they stop it, which shows a person what came too late. Any
        # order it finds is a true one, finished or not.
        budget = min(max_steps, EXPLANATION_STEPS)
        plain = Search(relevant, events, search.count, budget, prune=False)
        plain.run()
        if len(plain.longest) > len(search.longest):
            search.longest = plain.longest
        result.steps += plain.steps
        result.explanation = _explain(relevant, events, search, ops)
    return result


def infer_revisions(ops: list[KvOp]) -> list[KvOp]:
    """The operations with a lost put's revision filled in where reads tell
    it: when no other put may have written its value, a read of that value
    at revision r means the put, if it took effect, did at r. That orders
    it among the writes (revisions increase) instead of anywhere."""
    writers: dict[str, list[KvOp]] = defaultdict(list)
    revisions: dict[str, set[int]] = defaultdict(set)
    for op in ops:
        if op.kind == PUT and op.outcome in (OK, UNKNOWN):
            writers[op.value].append(op)
        elif op.kind == GET and op.outcome == OK:
            revisions[op.value].add(op.revision)
    inferred = []
    for op in ops:
        if op.kind == PUT and op.outcome == UNKNOWN and op.revision is None:
            if len(writers[op.value]) == 1 and len(revisions[op.value]) == 1:
                (revision,) = revisions[op.value]
                op = replace(op, revision=revision)
        inferred.append(op)
    return inferred


def _impossible_read(ops: list[KvOp]) -> int | None:
    """The first answered read whose value and revision no put among
    ``ops`` could have written by then, or None."""
    reads = [i for i, op in enumerate(ops) if op.kind == GET and op.outcome == OK]
    for i in sorted(reads, key=lambda i: ops[i].complete):
        read = ops[i]
        writers = [
            w
            for w in ops
            if w.kind == PUT
            and w.value == read.value
            and w.invoke <= read.complete
            and w.revision in (None, read.revision)
        ]
        if not writers:
            return i
    return None


def _searched(op: KvOp) -> bool:
    if op.outcome == FAIL:
        return False  # known to have changed nothing
    if op.outcome in DEFINITE:
        if op.complete is None:
            raise ValueError(f"an answered operation without completion: {op}")
        return True
    return has_effect(op)  # a lost answer: only a write may matter


def _explain(ops, events, search: Search, recorded: list[KvOp]) -> str:
    """What a person needs to see why the prefix fails; ``recorded`` are
    the key's operations before any was left out."""
    _, kind, culprit = events[search.count - 1]
    in_prefix = sorted(
        {i for _, _, i in events[: search.count]}, key=lambda i: ops[i].invoke
    )
    lines = []
    if search.shortest and kind == 1:
        lines.append(f"nothing explains: {describe(ops[culprit])}")
        lines += [f"  hint: {hint}" for hint in _hints(ops, culprit, recorded)]
        lines.append(f"given the {len(in_prefix)} operations invoked before it:")
    else:
        culprit = -1
        lines.append(
            f"no order of these {len(in_prefix)} operations works (a shorter "
            "prefix that fails was not found within the step budget):"
        )
    shown = in_prefix[-MAX_LISTED:]
    if len(in_prefix) > len(shown):
        lines.append(f"  ({len(in_prefix) - len(shown)} earlier ones not listed)")
    for i in shown:
        mark = "*" if i == culprit else " "
        later = ops[i].outcome in DEFINITE and not search.required.get(i, False)
        note = " (answered after)" if later and i != culprit else ""
        lines.append(f" {mark}{describe(ops[i])}{note}")
    lines.append(
        f"the longest order found places {len(search.longest)} "
        "of them, each with the state it leaves:"
    )
    shown = search.longest[-MAX_LISTED:]
    if len(search.longest) > len(shown):
        lines.append(f"  ({len(search.longest) - len(shown)} earlier ones not listed)")
    lines += [f"  {describe(ops[i])}  => {state}" for i, state in shown]
    return "\n".join(lines)


def _hints(ops: list[KvOp], culprit: int, recorded: list[KvOp]) -> list[str]:
    """The plain reasons behind the common failures: a value or a revision
    that no write could have produced."""
    op = ops[culprit]
    hints = []
    if op.kind == GET and op.outcome == OK:
        writers = [
            w
            for w in recorded
            if w.kind == PUT and w.value == op.value and w.invoke <= op.complete
        ]
        failed = [w for w in writers if w.outcome == FAIL]
        if not writers:
            hints.append(f"no put of {op.value!r} was invoked before it completed")
        elif len(failed) == len(writers):
            hints.append(
                f"the only put of {op.value!r} failed with nothing changed: "
                f"{describe(failed[0])}"
            )
    if op.outcome == OK and op.revision is not None:
        for other in ops:
            same = other.is_write and other.outcome == OK and other is not op
            if same and other.revision == op.revision:
                if op.kind == GET and other.kind == PUT and other.value == op.value:
                    continue
                hints.append(f"revision {op.revision} is that of {describe(other)}")
    return hints
