"""The Wing-Gong-Lowe search for an order of one key's operations that the
model of ``kv_model`` accepts and real time allows. Pure.

Wing & Gong ("Testing and verifying concurrent objects", 1993), with
Lowe's memoisation ("Testing for linearizability", 2017), laid out as
Porcupine (github.com/anishathalye/porcupine) does: the calls and returns
in time order on a doubly linked list; place the first call the model
accepts in the current state, lift it out and start again from the head;
meeting a return means its operation cannot go any later, so undo the last
choice and try the next call. Configurations (operations placed, state)
already explored are not explored again. On top of that, all sound:

- Operations that need not be placed (a lost answer, or an answer after
  the prefix searched) are tried only once the list reaches a return, and
  a configuration is covered by one with the same required operations and
  state and a subset of these placed: they may always stay unplaced.
- An operation that leaves the state as it is (a read, a 412, a 404) is
  placed at once with no alternative tried: moving it first in any order
  that works keeps the order working, as the states after it are at least
  as permissive (the partial-order reduction of reads).
- The state's revision never goes down, so an order is cut as soon as it
  passes the ceiling of an operation still to place (``kv_model.ceiling``)
  instead of when the list reaches that operation's return.
"""

from __future__ import annotations

import heapq

from .kv_history import KvOp
from .kv_model import INITIAL, State, ceiling, has_effect, step

VALID = "linearizable"
INVALID = "not_linearizable"
UNKNOWN_VERDICT = "unknown"

# An event is (time, 0 for a call or 1 for a return, op number). A call
# sorts before a return at the same instant: the two count as concurrent,
# the reading that never blames a correct history.
Event = tuple[float, int, int]


def events_of(ops: list[KvOp], answered) -> list[Event]:
    """The calls of ``ops`` and the returns of those ``answered`` accepts."""
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i))
        if answered(op):
            events.append((op.complete, 1, i))
    events.sort()
    return events


class Search:
    """One search over the first ``count`` events (all when None). An
    operation invoked within them whose answer comes after them is in
    flight: it may be placed (with the answer it will get) or not; one
    without effect is left out. ``prune`` False leaves out the ceilings
    and the reduction of reads, so the longest order found goes on past
    the point where they stop it (for explanations)."""

    def __init__(self, ops, events, count=None, max_steps=1_000_000, prune=True):
        count = len(events) if count is None else count
        self.ops, self.count, self.max_steps, self.prune = ops, count, max_steps, prune
        self.steps = 0
        self.spent = 0  # steps of earlier searches this one stands for
        self.shortest = False  # set when no shorter prefix fails
        self.longest: list[tuple[int, State]] = []  # (op, state after)
        returned = {i for _, kind, i in events[:count] if kind == 1}
        self.required: dict[int, bool] = {}  # op -> whether it must be placed
        position = {}
        for p, (_, kind, i) in enumerate(events[:count]):
            if kind == 0 and (i in returned or has_effect(ops[i])):
                self.required[i] = i in returned
                position[i] = p
        # The list: the calls that must be placed and their returns, each
        # with its event position; the others apart, by position.
        self.nodes = [
            (kind, i, p)
            for p, (_, kind, i) in enumerate(events[:count])
            if self.required.get(i)
        ]
        self.optional = sorted(
            (position[i], i) for i, must in self.required.items() if not must
        )

    def run(self) -> str:
        """VALID, INVALID, or UNKNOWN_VERDICT past ``max_steps``."""
        self._start()
        settle = True  # a new configuration: look for a read to place at once
        while self.remaining:
            self.steps += 1
            if self.steps > self.max_steps:
                return UNKNOWN_VERDICT
            if settle and self.prune:
                keeper = self._keeper()
                if keeper >= 0:
                    if self._place(keeper, -1, self.state, forced=True):
                        continue
                    # Covered: explored from here already, so this fails.
                    if not self._backtrack():
                        return INVALID
                    settle = False
                    continue
            settle = self._try_next()
            if not settle and self.k == -2 and not self._backtrack():
                return INVALID
        return VALID

    def _start(self) -> None:
        nodes = self.nodes
        head = self.head = len(nodes)  # the sentinel before the first node
        # Dancing links: a lifted node keeps its own links, so undoing in
        # reverse order of lifting puts it back where it was.
        self.nxt = [n + 1 for n in range(head)] + [0 if head else -1]
        self.prv = [n - 1 for n in range(head)] + [-1]
        if head:
            self.nxt[head - 1] = -1
            self.prv[0] = head
        self.return_of = {i: n for n, (kind, i, _) in enumerate(nodes) if kind == 1}
        self.remaining = len(self.return_of)
        self.state, self.placed, self.placed_optional = INITIAL, 0, 0
        # (placed, state) -> the sets of optional operations placed with it
        # already explored: Lowe 2017 §3, with the covering described above.
        self.seen: dict[tuple[int, State], list[int]] = {}
        # The ceilings of the operations still to place, lazily: an entry
        # whose operation is placed is dropped when it comes on top.
        self.ceilings = []
        for i in self.return_of:
            if ceiling(self.ops[i]) is not None:
                self.ceilings.append((ceiling(self.ops[i]), i))
        heapq.heapify(self.ceilings)
        # A frame: (list node or -1, optional number or -1, the position
        # of the return the optional ones were tried before, the state
        # before, whether placed without alternatives).
        self.stack: list[tuple[int, int, int, State, bool]] = []
        self.n, self.k, self.limit = self.nxt[head], -1, 0

    def _keeper(self) -> int:
        """A call before the first return that leaves the state as is, or
        -1. Placing it first is never worse (see the module docstring)."""
        n = self.nxt[self.head]
        while self.nodes[n][0] == 0:
            self.steps += 1
            if step(self.state, self.ops[self.nodes[n][1]]) == self.state:
                return n
            n = self.nxt[n]
        return -1

    def _try_next(self) -> bool:
        """Try the next candidate: a list call, else an optional operation
        invoked before the return the list reached. False when that one
        failed (or none is left: then ``k`` is -2)."""
        if self.k == -1:
            kind, i, position = self.nodes[self.n]
            if kind == 1:
                self.k, self.limit = 0, position
                return False
            after = step(self.state, self.ops[i])
            if after is not None and self._place(self.n, -1, after):
                return True
            self.n = self.nxt[self.n]
            return False
        k, optional = self.k, self.optional
        while k < len(optional) and self.placed_optional >> k & 1:
            k += 1
        if k == len(optional) or optional[k][0] >= self.limit:
            self.k = -2
            return False
        after = step(self.state, self.ops[optional[k][1]])
        if after is not None and self._place(-1, k, after):
            return True
        self.k = k + 1
        return False

    def _place(self, n: int, k: int, after: State, forced: bool = False) -> bool:
        placed, placed_optional = self.placed, self.placed_optional
        if n >= 0:
            placed |= 1 << self.nodes[n][1]
        else:
            placed_optional |= 1 << k
        if self.prune and self._too_late(after, self.nodes[n][1] if n >= 0 else -1):
            return False
        covering = self.seen.setdefault((placed, after), [])
        if any(old & ~placed_optional == 0 for old in covering):
            return False
        covering.append(placed_optional)
        self.stack.append((n, k, self.limit, self.state, forced))
        self.placed, self.placed_optional, self.state = placed, placed_optional, after
        if n >= 0:
            self._unlink(n)
            self._unlink(self.return_of[self.nodes[n][1]])
            self.remaining -= 1
        self._note()
        self.n, self.k = self.nxt[self.head], -1
        return True

    def _too_late(self, state: State, i: int) -> bool:
        """Whether an operation still to place, besides ``i`` (being placed
        now, or -1), needs a revision below ``state``'s."""
        ceilings, held = self.ceilings, []
        while ceilings and (self.placed >> ceilings[0][1] & 1 or ceilings[0][1] == i):
            entry = heapq.heappop(ceilings)
            if entry[1] == i:
                held.append(entry)  # its placing may yet be refused
        late = bool(ceilings) and ceilings[0][0] < state.revision
        for entry in held:
            heapq.heappush(ceilings, entry)
        return late

    def _backtrack(self) -> bool:
        """Undo choices up to the last that had alternatives, and resume
        after it; False when there is none."""
        while self.stack:
            n, k, self.limit, self.state, forced = self.stack.pop()
            if n >= 0:
                i = self.nodes[n][1]
                self.placed &= ~(1 << i)
                if ceiling(self.ops[i]) is not None:
                    heapq.heappush(self.ceilings, (ceiling(self.ops[i]), i))
                self._relink(self.return_of[i])
                self._relink(n)
                self.remaining += 1
                self.n, self.k = self.nxt[n], -1
            else:
                self.placed_optional &= ~(1 << k)
                self.k = k + 1
            if not forced:
                return True
        return False

    def _unlink(self, n: int) -> None:
        nxt, prv = self.nxt, self.prv
        nxt[prv[n]] = nxt[n]
        if nxt[n] != -1:
            prv[nxt[n]] = prv[n]

    def _relink(self, n: int) -> None:
        nxt, prv = self.nxt, self.prv
        nxt[prv[n]] = n
        if nxt[n] != -1:
            prv[nxt[n]] = n

    def _note(self) -> None:
        """Keep the longest order yet, each operation with the state it
        left, for the explanation of a failure."""
        if len(self.stack) <= len(self.longest):
            return
        afters = [frame[3] for frame in self.stack[1:]] + [self.state]
        self.longest = [
            (self.nodes[n][1] if n >= 0 else self.optional[k][1], after)
            for (n, k, *_), after in zip(self.stack, afters, strict=True)
        ]


def shortest_failing_prefix(ops, events, failed: Search, max_steps) -> Search:
    """The search of the shortest prefix of ``events`` that fails. A prefix
    of a linearizable history is linearizable (its calls in flight may be
    placed nowhere), so the failing prefixes are those from some length
    on: a binary search finds it. An "unknown" keeps the longer prefix."""
    good, bad, spent = 0, len(events), 0
    while bad - good > 1:
        middle = (good + bad) // 2
        search = Search(ops, events, middle, max_steps)
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
