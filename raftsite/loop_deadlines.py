"""The deadlines of the requests the loop thread reads itself
(raftsite/loop_conns.py), kept by the worker's main loop, which answers the
view's 504 or 503 at each if the loop thread, stuck, has not answered.

The main loop's heap of deadlines is its own: the loop thread cannot push
on it, and handing each deadline over (method_queue.defer) would wake the
main loop for every request, the very wake keeping the connection on the
loop thread saves. So the loop thread appends to deques (appends and
popleft are thread-safe), and the main loop looks at them each turn; it
wakes early only for a deadline before the end of its current wait.
"""

from __future__ import annotations

from collections import deque


class LoopDeadlines:
    def __init__(self):
        # Runs of (deadline, exchange), each in deadline order: the loop
        # thread appends a deadline to the first run it does not precede,
        # or starts a run. Requests of one timeout come in deadline order,
        # so each timeout in use (2 s for an AppendEntries,
        # RAFT_COMMAND_TIMEOUT_S for a command) keeps to about one run, and
        # a run's head is its earliest. The list only grows (a run emptied
        # takes any deadline): the main loop never removes one the loop
        # thread is appending to.
        self._runs: list[deque] = []
        # When the main loop's current wait ends (time.monotonic()); it
        # looks at the runs again by then.
        self.wake_at = 0.0

    def add(self, deadline: float, exchange) -> bool:
        """The loop thread: expire ``exchange`` at ``deadline`` unless it
        is answered before; True if the main loop must be woken to see it
        in time."""
        entry = (deadline, exchange)
        for run in self._runs:
            try:
                if run[-1][0] > deadline:
                    continue
            except IndexError:
                pass  # empty (the main loop pops only from the head)
            run.append(entry)
            break
        else:
            self._runs.append(deque((entry,)))
        # Read after the append, while the main loop publishes wake_at
        # before it looks at the runs: if its look missed this deadline, it
        # published wake_at first, so this reads the end of the wait that
        # follows that look, and wakes it if the deadline comes first. A
        # stale wake_at from an earlier wait lies in the past, and that
        # loop's next look comes before its next wait.
        return deadline < self.wake_at

    def expire_due(self, now: float) -> float | None:
        """The main loop: expire what is past its deadline at ``now``, drop
        what was answered; the earliest deadline left, or None."""
        first = None
        for run in self._runs:
            while run:
                deadline, exchange = run[0]
                if exchange.answered:
                    run.popleft()
                elif deadline <= now:
                    run.popleft()
                    exchange.expire()
                else:
                    if first is None or deadline < first:
                        first = deadline
                    break
        return first
