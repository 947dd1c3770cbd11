"""Linearizability of the key-value operations of a history (``kv_history``)
against the register-with-revision model of ``kv_model``. Pure.

The search is Wing & Gong's ("Testing and verifying concurrent objects",
1993) with Lowe's memoisation ("Testing for linearizability", 2017), laid
out as Porcupine (github.com/anishathalye/porcupine) does: the calls and
returns in time order on a doubly linked list; take the first call whose
operation the model accepts in the current state, lift it out and start
again from the head; meeting a return means its operation cannot be placed
any later, so undo the last choice and try the next call. A set of
(operations linearized, state) pairs already explored keeps the search
from exploring one configuration twice. Each key is its own object, and
linearizability is local (Herlihy & Wing 1990), so keys are searched apart.

An operation of unknown outcome has no return: it may be placed anywhere
after its invocation, or nowhere (Knossos's and Porcupine's "info" ops),
and the search succeeds once every operation with an answer is placed.
One that failed with nothing changed (``FAIL``) is left out, and so is a
read whose answer was lost. ``linearizable`` reads are searched; ``stale``
reads are checked by ``stale_reads``; so are ``leader`` reads unless asked
otherwise, since a deposed leader that has not heard so answers from its
own state (CONTRACT.md: "without confirming leadership").

The search is exponential at worst, so it stops after ``max_steps`` and
says "unknown". On a failure it finds the shortest prefix of the history
(by time) that no order explains: the operation whose answer ends that
prefix is the one nothing explains, listed with the operations before it
and the longest order the search could make of them.
"""

from __future__ import annotations

import heapq
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
    UNKNOWN,
    KvOp,
    describe,
    merge_retries,
)
from .kv_model import INITIAL, State, ceiling, has_effect, step
from .stale_reads import check_stale_reads
from .violations import RETRY_ANSWER, Violation

# Verdicts, one per key and one for the history.
VALID = "linearizable"
INVALID = "not_linearizable"
UNKNOWN_VERDICT = "unknown"

# Violation kinds for the fault run's report.
NONLINEARIZABLE = "nonlinearizable"
STALE_READ = "stale_read"

# Enough for the few hundred operations per key of a fault run with a
# handful of clients (they take thousands of steps); a few seconds of work.
DEFAULT_MAX_STEPS = 1_000_000
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
    report.stale = check_stale_reads(merged, levels=("stale", *stale_levels))
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
    events = _events(relevant)
    search = _Search(relevant, events, None, max_steps)
    result = KeyResult(key, search.run(), len(relevant), search.steps)
    if result.verdict == UNKNOWN_VERDICT:
        result.explanation = (
            f"gave up after {max_steps} steps; the longest order found "
            f"placed {len(search.longest)} of {len(relevant)} operations"
        )
    elif result.verdict == INVALID:
        search = _shortest_failing_prefix(relevant, events, search, max_steps)
        result.steps += search.spent
        # Without the ceilings the longest order goes on past the point
        # where they stop it, which shows a person what came too late.
        plain = _Search(relevant, events, search.count, max_steps, prune=False)
        if plain.run() == INVALID:
            search.longest = plain.longest
        result.steps += plain.steps
        result.explanation = _explain(relevant, events, search)
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


def _searched(op: KvOp) -> bool:
    if op.outcome == FAIL:
        return False  # known to have changed nothing
    if op.outcome in DEFINITE:
        if op.complete is None:
            raise ValueError(f"an answered operation without completion: {op}")
        return True
    return has_effect(op)  # a lost answer: only a write may matter


# An event is (time, 0 for a call or 1 for a return, op number). A call
# sorts before a return at the same instant: the two count as concurrent,
# the reading that never blames a correct history.
Event = tuple[float, int, int]


def _events(ops: list[KvOp]) -> list[Event]:
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i))
        if op.outcome in DEFINITE:
            events.append((op.complete, 1, i))
    events.sort()
    return events


class _Search:
    """One WGL search over the first ``count`` events (all when None). An
    operation invoked within them whose answer comes after them is in
    flight: it may be placed (with the answer it will get) or not, and one
    without effect is left out."""

    def __init__(self, ops, events, count, max_steps, prune=True):
        count = len(events) if count is None else count
        self.prune = prune
        self.ops = ops
        self.max_steps = max_steps
        self.steps = 0
        self.spent = 0  # steps of earlier searches this one stands for
        self.shortest = False  # no shorter prefix fails
        self.count = count
        self.longest: list[tuple[int, State]] = []
        returned = {i for _, kind, i in events[:count] if kind == 1}
        self.required: dict[int, bool] = {}  # op -> whether it must be placed
        position = {}
        for p, (_, kind, i) in enumerate(events[:count]):
            if kind == 0 and (i in returned or has_effect(ops[i])):
                self.required[i] = i in returned
                position[i] = p
        # The list holds the calls that must be placed and their returns;
        # the others, by position, are tried only once it reaches a return.
        self.nodes = [
            (kind, i, p)
            for p, (_, kind, i) in enumerate(events[:count])
            if self.required.get(i)
        ]
        self.optional = sorted(
            (position[i], i) for i, must in self.required.items() if not must
        )

    def run(self) -> str:
        nodes, optional, ops = self.nodes, self.optional, self.ops
        head = len(nodes)  # the sentinel before the first node
        # Dancing links: a lifted node keeps its own links, so undoing in
        # reverse order of lifting puts it back where it was.
        nxt = [n + 1 for n in range(head)] + [0 if head else -1]
        prv = [n - 1 for n in range(head)] + [-1]
        if head:
            nxt[head - 1] = -1
            prv[0] = head
        return_of = {i: n for n, (kind, i, _) in enumerate(nodes) if kind == 1}
        # The least revision bound of the operations still to place, kept
        # lazily: an entry whose operation is placed is dropped when on top.
        bounds = [(ceiling(ops[i]), i) for i in return_of]
        bounds = [(b, i) for b, i in bounds if b is not None]
        heapq.heapify(bounds)

        def too_late(state, placed):
            """Whether some operation still to place needs a revision below
            the state's: revisions never go down along an order."""
            while bounds and placed >> bounds[0][1] & 1:
                heapq.heappop(bounds)
            return bool(bounds) and bounds[0][0] < state.revision and self.prune

        def unlink(n):
            nxt[prv[n]] = nxt[n]
            if nxt[n] != -1:
                prv[nxt[n]] = prv[n]

        def relink(n):
            nxt[prv[n]] = n
            if nxt[n] != -1:
                prv[nxt[n]] = n

        remaining = len(return_of)
        state, placed, placed_optional = INITIAL, 0, 0
        # Lowe 2017 §3: (placed, state) configurations already explored, or
        # on the stack, need not be again. With the in-flight operations
        # apart, a configuration is covered by one of the same placed and
        # state that had a subset of them placed: those may still never be.
        seen: dict[tuple[int, State], list[int]] = {}

        def fresh(placed, placed_optional, state):
            covering = seen.setdefault((placed, state), [])
            if any(old & ~placed_optional == 0 for old in covering):
                return False
            covering.append(placed_optional)
            return True

        # A frame: the list node or optional number placed, the return the
        # optional ones were tried before, and the state before it.
        stack: list[tuple[int, int, int, State]] = []
        n, k, limit = nxt[head], -1, 0
        while remaining:
            self.steps += 1
            if self.steps > self.max_steps:
                return UNKNOWN_VERDICT
            if k < 0:
                kind, i, position = nodes[n]
                if kind == 1:
                    # The calls that may go before this return are the
                    # list's, tried, and the optional ones invoked before.
                    k, limit = 0, position
                    continue
                after = step(state, ops[i])
                if (
                    after is not None
                    and not too_late(after, placed | 1 << i)
                    and fresh(placed | 1 << i, placed_optional, after)
                ):
                    stack.append((n, -1, 0, state))
                    placed |= 1 << i
                    state = after
                    unlink(n)
                    unlink(return_of[i])
                    remaining -= 1
                    self._note(stack, state)
                    n = nxt[head]
                    continue
                n = nxt[n]
                continue
            while k < len(optional) and placed_optional >> k & 1:
                k += 1
            if k < len(optional) and optional[k][0] < limit:
                after = step(state, ops[optional[k][1]])
                if after is not None and fresh(placed, placed_optional | 1 << k, after):
                    stack.append((-1, k, limit, state))
                    placed_optional |= 1 << k
                    state = after
                    self._note(stack, state)
                    n, k = nxt[head], -1
                    continue
                k += 1
                continue
            # The return reached belongs to an operation that can be placed
            # nowhere before it: undo the last choice and try the next.
            if not stack:
                return INVALID
            n, k, limit, state = stack.pop()
            if k < 0:
                j = nodes[n][1]
                placed &= ~(1 << j)
                b = ceiling(ops[j])
                if b is not None:
                    heapq.heappush(bounds, (b, j))
                relink(return_of[j])
                relink(n)
                remaining += 1
                n = nxt[n]
            else:
                placed_optional &= ~(1 << k)
                k += 1
        return VALID

    def _note(self, stack, state) -> None:
        """Keep the longest order yet, each operation with the state it
        left, for the explanation of a failure."""
        if len(stack) <= len(self.longest):
            return
        afters = [before for *_, before in stack[1:]] + [state]
        self.longest = [
            (self.nodes[n][1] if n >= 0 else self.optional[k][1], after)
            for (n, k, _, _), after in zip(stack, afters, strict=True)
        ]


def _shortest_failing_prefix(ops, events, failed, max_steps) -> _Search:
    """The search of the shortest prefix of ``events`` that fails. A prefix
    of a linearizable history is linearizable (its calls in flight may be
    placed nowhere), so the failing prefixes are those from some length
    on: a binary search finds it. An "unknown" keeps the longer prefix."""
    good, bad, spent = 0, len(events), 0
    while bad - good > 1:
        middle = (good + bad) // 2
        search = _Search(ops, events, middle, max_steps)
        verdict = search.run()
        spent += search.steps
        if verdict == VALID:
            good = middle
        elif verdict == INVALID:
            bad, failed = middle, search
        else:
            break
    else:
        failed.shortest = True
    failed.spent = spent
    return failed


def _explain(ops, events, search: _Search) -> str:
    """What a person needs to see why the prefix fails."""
    _, kind, culprit = events[search.count - 1]
    lines = []
    if search.shortest and kind == 1:
        lines.append(f"nothing explains: {describe(ops[culprit])}")
        lines += [f"  hint: {hint}" for hint in _hints(ops, culprit)]
    in_prefix = sorted(
        {i for _, _, i in events[: search.count]}, key=lambda i: ops[i].invoke
    )
    lines.append(f"given the {len(in_prefix)} operations invoked before that:")
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


def _hints(ops: list[KvOp], culprit: int) -> list[str]:
    """The plain reasons behind the common failures: a value or a revision
    that no write could have produced."""
    op = ops[culprit]
    hints = []
    if op.kind == GET and op.outcome == OK:
        writers = [
            w
            for w in ops
            if w.kind == PUT and w.value == op.value and w.invoke <= op.complete
        ]
        if not writers:
            hints.append(f"no put of {op.value!r} was invoked before it completed")
    if op.outcome == OK and op.revision is not None:
        for other in ops:
            same = other.is_write and other.outcome == OK and other is not op
            if same and other.revision == op.revision:
                if op.kind == GET and other.kind == PUT and other.value == op.value:
                    continue
                hints.append(f"revision {op.revision} is that of {describe(other)}")
    return hints
