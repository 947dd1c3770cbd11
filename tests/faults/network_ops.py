"""Network faults (servers in their own namespaces: nemesis.NETNS): an
isolated server, splits, a bridge, one-way cuts, loss, flapping partitions,
and a network fault combined with a process fault. Registered in
nemesis.REGISTRY when nemesis is imported.
"""

from __future__ import annotations

import random
import threading

from .nemesis import NETNS, REGISTRY, Active, Nemesis, _minority, _target, register


def _cut(side_a, side_b) -> set[tuple[int, int]]:
    """Both directions between every server of side_a and of side_b."""
    return {(a, b) for a in side_a for b in side_b} | {
        (b, a) for a in side_a for b in side_b
    }


class _NetworkNemesis(Nemesis):
    requires = frozenset({NETNS})
    hold_s = (1.0, 8.0)

    def _apply(self, bed, blocked, loss_percent=0, description=""):
        bed.block(blocked, loss_percent)
        return Active(description, bed.unblock)


@register
class Isolate(_NetworkNemesis):
    """Cut one server (often the leader) off from all the others."""

    name = "isolate"
    weight = 1.5
    min_size = 2

    def plan(self, rng, size):
        return {"target": _target(rng, size)}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        others = [j for j in range(bed.size) if j != i]
        return self._apply(bed, _cut([i], others), description=f"isolated {i}")


@register
class Split(_NetworkNemesis):
    """A random majority / minority partition."""

    name = "split"
    min_size = 3

    def plan(self, rng, size):
        nodes = list(range(size))
        rng.shuffle(nodes)
        return {"minority": sorted(nodes[: max(1, _minority(size))])}

    def start(self, bed, params):
        minority = params["minority"]
        majority = [j for j in range(bed.size) if j not in minority]
        return self._apply(
            bed, _cut(minority, majority), description=f"split {minority} | {majority}"
        )


@register
class Bridge(_NetworkNemesis):
    """Two sides that cannot talk, and one server that sees both."""

    name = "bridge"
    min_size = 3

    def plan(self, rng, size):
        nodes = list(range(size))
        rng.shuffle(nodes)
        bridge, rest = nodes[0], nodes[1:]
        half = len(rest) // 2
        return {
            "bridge": bridge,
            "left": sorted(rest[:half]),
            "right": sorted(rest[half:]),
        }

    def start(self, bed, params):
        left, right = params["left"], params["right"]
        return self._apply(
            bed,
            _cut(left, right),
            description=f"{left} | {right} cut, {params['bridge']} sees both",
        )


@register
class OneWay(_NetworkNemesis):
    """Drop the packets in one direction only, between one server (often the
    leader) and all the others: ``out`` loses what it sends, ``in`` what
    it receives."""

    name = "one_way"
    min_size = 2

    def plan(self, rng, size):
        return {"target": _target(rng, size), "direction": rng.choice(["out", "in"])}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        others = [j for j in range(bed.size) if j != i]
        if params["direction"] == "out":
            blocked = {(i, j) for j in others}
        else:
            blocked = {(j, i) for j in others}
        return self._apply(
            bed, blocked, description=f"one-way {params['direction']} at {i}"
        )


@register
class Loss(_NetworkNemesis):
    """Random packet loss between every pair of servers."""

    name = "loss"
    hold_s = (2.0, 8.0)

    def plan(self, rng, size):
        return {"percent": rng.choice([5, 10, 20, 30, 40])}

    def start(self, bed, params):
        return self._apply(
            bed, set(), params["percent"], description=f"{params['percent']}% loss"
        )


@register
class Flap(_NetworkNemesis):
    """A new random partition every few hundred milliseconds (a flapping
    network: terms churn, leaders come and go), healed at the end."""

    name = "flap"
    weight = 0.7
    min_size = 3
    hold_s = (3.0, 10.0)

    def plan(self, rng, size):
        return {"seed": rng.randrange(2**31), "period_s": rng.choice([0.2, 0.5, 1.0])}

    def start(self, bed, params):
        rng = random.Random(params["seed"])
        stop = threading.Event()
        changes = []

        def flap():
            while not stop.is_set():
                nodes = list(range(bed.size))
                rng.shuffle(nodes)
                cut = rng.randint(1, bed.size - 1)
                bed.block(_cut(nodes[:cut], nodes[cut:]))
                changes.append(sorted(nodes[:cut]))
                stop.wait(params["period_s"])

        thread = threading.Thread(target=flap, name="nemesis-flap", daemon=True)
        thread.start()

        def heal():
            stop.set()
            thread.join(10.0)
            bed.unblock()
            bed.note(f"flap: {len(changes)} partitions")

        return Active(f"flapping partitions every {params['period_s']} s", heal)


@register
class Combined(Nemesis):
    """A network fault and a process fault at once (e.g. a partition while
    a server of the majority is killed or paused), healed in reverse."""

    name = "combined"
    requires = frozenset({NETNS})
    weight = 1.0
    min_size = 3
    hold_s = (2.0, 8.0)
    network_ops = ("isolate", "split", "bridge", "one_way", "loss")
    process_ops = ("kill", "pause")

    def plan(self, rng, size):
        first, second = rng.choice(self.network_ops), rng.choice(self.process_ops)
        return {
            first: REGISTRY[first].plan(rng, size),
            second: REGISTRY[second].plan(rng, size),
        }

    def start(self, bed, params):
        started = []
        try:
            for name, sub in params.items():
                started.append(REGISTRY[name].start(bed, sub))
        except BaseException:
            for active in reversed(started):
                active.heal()
            raise

        def heal():
            for active in reversed(started):
                active.heal()

        return Active("; ".join(a.description for a in started), heal)
