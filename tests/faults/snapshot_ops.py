"""A follower left behind until the leader's log no longer holds the entries
it needs next (Raft §7): killed, paused, cut off (namespaces) or its power
cut (lazyfs), and brought back only once the leader has compacted past it,
so the leader must send it a snapshot; on lazyfs, also its power cut the
moment it has restored that snapshot. Registered in nemesis.REGISTRY when
nemesis is imported.
"""

from __future__ import annotations

import time

from .nemesis import NETNS, Active, Nemesis, register
from .nodestate import RESTORED
from .powercut_ops import POWER

# Ways to leave the follower behind, and what each needs of the bed.
HOW = (("kill", None), ("pause", None), ("isolate", NETNS), ("power_cut", POWER))
# Entries the follower may still have received after its status was read.
MARGIN = 20
# At most this long for the leader to compact past it (a few seconds at the
# runs' snapshot settings, much longer on a busy machine); then it is
# healed anyway, and the note says so.
WAIT_S = 40.0
# How long to keep asking for a log's end when no server answers (all of
# them restarting after a crash of the whole cluster, on a busy machine).
ASK_S = 20.0


def log_end(bed, i: int) -> int | None:
    """Server i's last log index (or the leader's), asked until one answers
    or ASK_S passes."""
    deadline = time.monotonic() + ASK_S
    while True:
        behind = bed.last_log_index(i)
        if behind is not None or time.monotonic() >= deadline:
            return behind
        time.sleep(0.2)


@register
class LagFollower(Nemesis):
    """Leave a follower (a member, not the leader) behind until the
    leader's first log index is past the follower's last; then bring it
    back: the leader sends its snapshot (POST /raft/install_snapshot)."""

    name = "lag_follower"
    weight = 0.5
    min_size = 3  # a majority goes on without the follower
    hold_s = (0.0, 1.0)  # on top of the wait for the compaction

    def plan(self, rng, size):
        # A fraction, turned into one of the ways the bed offers at start.
        return {"target": "follower", "how": round(rng.random(), 3)}

    def start(self, bed, params):
        ways = [h for h, needs in HOW if needs is None or needs in bed.capabilities]
        how = ways[int(params["how"] * len(ways)) % len(ways)]
        i = bed.resolve(params["target"])
        behind = bed.last_log_index(i)
        if how == "kill":
            bed.kill(i)
            undo = lambda: bed.restart(i)  # noqa: E731
        elif how == "pause":
            bed.pause(i)
            undo = lambda: bed.resume(i)  # noqa: E731
        elif how == "isolate":
            others = [j for j in range(bed.size) if j != i]
            bed.block({(i, j) for j in others} | {(j, i) for j in others})
            undo = bed.unblock
        else:
            lost = bed.power_cut([i])
            bed.note(f"lag_follower power cut {i}: {lost}")
            undo = lambda: bed.restart(i)  # noqa: E731

        def heal():
            nonlocal behind
            try:
                if behind is None:  # no answer at the start: ask again
                    behind = log_end(bed, i)
                if behind is None:
                    bed.note(f"lag_follower: {i}'s log unknown; not waiting")
                else:
                    first = bed.wait_compacted_past(behind + MARGIN, WAIT_S, i)
                    bed.note(
                        f"lag_follower: the leader's log starts at {first}, "
                        f"{i}'s ended at {behind}"
                        + ("" if first and first > behind + MARGIN else " (timed out)")
                    )
            finally:
                undo()

        return Active(f"{how} follower {i} (log to {behind})", heal)


@register
class PowerCutAfterRestore(Nemesis):
    """Aimed at a follower's snapshot install: leave a follower behind (a
    kill) until the leader has compacted past it, restart it, and cut its
    power as soon as it prints ``Restored snapshot``, before it takes a
    snapshot of its own. Whatever the install wrote without an fsync (the
    received file, the restored tables) is then lost, and the restart
    must still find a snapshot covering the log it kept."""

    name = "power_cut_after_restore"
    requires = frozenset({POWER})
    weight = 0.5
    min_size = 3
    hold_s = (0.2, 2.0)

    def plan(self, rng, size):
        return {"target": "follower"}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        behind = bed.last_log_index(i)
        bed.kill(i)
        first = None
        if behind is None:  # no answer at the start: ask again
            behind = log_end(bed, i)
        if behind is not None:
            first = bed.wait_compacted_past(behind + MARGIN, WAIT_S, i)
        bed.restart(i)
        restored = bed.wait_line(i, RESTORED, WAIT_S)
        lost = bed.power_cut([i])
        return Active(
            f"power cut {i} "
            + (f"right after {restored!r}" if restored else "(no restore seen)")
            + f"; its log had ended at {behind}, the leader's started at {first}: "
            + f"{lost}",
            lambda: bed.restart(i),
        )


NAMES = (LagFollower.name, PowerCutAfterRestore.name)
