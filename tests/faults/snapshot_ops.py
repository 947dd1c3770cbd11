"""A follower left behind until the leader's log no longer holds the entries
it needs next (Raft §7): killed, paused, cut off (namespaces) or its power
cut (lazyfs), and brought back only once the leader has compacted past it,
so the leader must send it a snapshot. Registered in nemesis.REGISTRY when
nemesis is imported.
"""

from __future__ import annotations

from .nemesis import NETNS, Active, Nemesis, register
from .powercut_ops import POWER

# Ways to leave the follower behind, and what each needs of the bed.
HOW = (("kill", None), ("pause", None), ("isolate", NETNS), ("power_cut", POWER))
# Entries the follower may still have received after its status was read.
MARGIN = 20
# At most this long for the leader to compact past it (a few seconds at the
# runs' snapshot settings, much longer on a busy machine); then it is
# healed anyway, and the note says so.
WAIT_S = 40.0


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
            try:
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
