"""Fault operations (nemeses), a registry of them, and seeded schedules.

A schedule is a list of steps planned from a seed alone: which operation,
its parameters, how long the fault holds and the pause before the next one.
Only a target named "leader" is resolved when the step runs. A later issue
adds its own operation (a membership change, a snapshot) by subclassing
Nemesis and calling ``register``; schedules then draw it too.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

# Capabilities a test bed may offer; an operation lists those it needs.
NETNS = "netns"  # servers in their own network namespaces (cuts, loss)


class Bed(Protocol):
    """What an operation acts on (runner.TestBed implements it)."""

    size: int
    capabilities: frozenset[str]

    def resolve(self, target) -> int: ...
    def kill(self, i: int) -> None: ...
    def restart(self, i: int) -> None: ...
    def pause(self, i: int) -> None: ...
    def resume(self, i: int) -> None: ...
    def block(self, blocked: set[tuple[int, int]], loss_percent: int = 0) -> None: ...
    def unblock(self) -> None: ...
    def transfer_leadership(self, to: int | None) -> str: ...
    def note(self, text: str) -> None: ...


@dataclass
class Step:
    """One planned fault: ``op`` with ``params``, held ``hold_s`` seconds,
    then ``gap_s`` seconds of calm."""

    op: str
    params: dict = field(default_factory=dict)
    hold_s: float = 1.0
    gap_s: float = 1.0

    def __str__(self):
        params = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.op}({params}) hold {self.hold_s:.1f}s gap {self.gap_s:.1f}s"


@dataclass
class Active:
    """A fault in force: what it did, and how to undo it."""

    description: str
    heal: Callable[[], None]


class Nemesis:
    """One kind of fault. ``plan`` picks parameters from the schedule's
    random generator; ``start`` applies them and returns how to heal."""

    name = ""
    requires: frozenset[str] = frozenset()
    weight = 1.0
    min_size = 1
    hold_s = (1.0, 5.0)  # the range a schedule draws the hold time from

    def plan(self, rng: random.Random, size: int) -> dict:
        return {}

    def start(self, bed: Bed, params: dict) -> Active:
        raise NotImplementedError


REGISTRY: dict[str, Nemesis] = {}


def register(nemesis: type[Nemesis] | Nemesis):
    """Add an operation to every schedule drawn from now on (usable as a
    class decorator)."""
    instance = nemesis() if isinstance(nemesis, type) else nemesis
    if not instance.name:
        raise ValueError(f"{nemesis!r} has no name")
    REGISTRY[instance.name] = instance
    return nemesis


def available(capabilities: frozenset[str], size: int, names=None) -> list[Nemesis]:
    """The registered operations a bed with these capabilities can run."""
    chosen = []
    for name, nemesis in sorted(REGISTRY.items()):
        if names is not None and name not in names:
            continue
        if nemesis.requires <= capabilities and size >= nemesis.min_size:
            chosen.append(nemesis)
    if names is not None:
        unknown = set(names) - set(REGISTRY)
        if unknown:
            raise KeyError(
                f"no such nemesis: {sorted(unknown)}; known: {sorted(REGISTRY)}"
            )
    return chosen


def make_schedule(
    seed: int,
    duration_s: float,
    size: int,
    capabilities: frozenset[str],
    names=None,
    gap_s: tuple[float, float] = (0.5, 3.0),
    cover: bool = False,
    hold_scale: float = 1.0,
) -> list[Step]:
    """Steps drawn from ``seed`` until their hold and gap times add up to
    ``duration_s``; with ``cover``, every operation once (in a seeded
    order) before the random draws; ``hold_scale`` shortens (or lengthens)
    every hold. The same arguments always give the same schedule."""
    rng = random.Random(seed)
    ops = available(capabilities, size, names)
    if not ops:
        raise ValueError("no nemesis applies to this test bed")
    first = rng.sample(ops, len(ops)) if cover else []
    steps, total = [], 0.0
    while total < duration_s or first:
        if first:
            nemesis = first.pop()
        else:
            nemesis = rng.choices(ops, weights=[op.weight for op in ops])[0]
        step = Step(
            nemesis.name,
            nemesis.plan(rng, size),
            round(rng.uniform(*nemesis.hold_s) * hold_scale, 2),
            round(rng.uniform(*gap_s), 2),
        )
        steps.append(step)
        total += step.hold_s + step.gap_s
    return steps


def _target(rng: random.Random, size: int) -> object:
    """Half the time the leader of the moment, else a server by index."""
    return "leader" if rng.random() < 0.5 else rng.randrange(size)


def _minority(size: int) -> int:
    return (size - 1) // 2


# -- processes ---------------------------------------------------------------


@register
class Kill(Nemesis):
    """SIGKILL one server's process group; restart it on the same data."""

    name = "kill"
    weight = 1.5
    hold_s = (0.5, 5.0)

    def plan(self, rng, size):
        return {"target": _target(rng, size)}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        bed.kill(i)
        return Active(f"killed {i}", lambda: bed.restart(i))


@register
class KillMajority(Nemesis):
    """SIGKILL a majority at once (no quorum left); restart them."""

    name = "kill_majority"
    weight = 0.5
    min_size = 2

    def plan(self, rng, size):
        return {"nodes": sorted(rng.sample(range(size), size // 2 + 1))}

    def start(self, bed, params):
        nodes = params["nodes"]
        for i in nodes:
            bed.kill(i)

        def heal():
            for i in nodes:
                bed.restart(i)

        return Active(f"killed {nodes}", heal)


@register
class CrashAll(Nemesis):
    """SIGKILL every server at once, as a power cut would; restart all."""

    name = "crash_all"
    weight = 0.3
    hold_s = (0.2, 2.0)

    def start(self, bed, params):
        nodes = list(range(bed.size))
        for i in nodes:
            bed.kill(i)

        def heal():
            for i in nodes:
                bed.restart(i)

        return Active("killed every server", heal)


@register
class Pause(Nemesis):
    """SIGSTOP one server's process group (a stalled leader); SIGCONT it."""

    name = "pause"
    weight = 1.5
    hold_s = (0.5, 6.0)

    def plan(self, rng, size):
        return {"target": _target(rng, size)}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        bed.pause(i)
        return Active(f"paused {i}", lambda: bed.resume(i))


@register
class Transfer(Nemesis):
    """Ask the leader to hand leadership over (POST /api/leader), to a
    chosen server or to the most up-to-date one; the leader refuses
    commands with 503 meanwhile, and those must never commit."""

    name = "transfer"
    weight = 0.7
    min_size = 2
    hold_s = (0.0, 1.0)

    def plan(self, rng, size):
        return {"to": rng.choice([None, rng.randrange(size)])}

    def start(self, bed, params):
        answer = bed.transfer_leadership(params["to"])
        return Active(f"leadership transfer to {params['to']}: {answer}", lambda: None)


# -- network (namespaces) ------------------------------------------------------


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


def run_schedule(bed, history, steps: list[Step], sleep, deadline=None) -> int:
    """Run the steps in order (from the thread that started the servers:
    their PDEATHSIG follows it); every fault is healed before returning,
    also on error. Returns how many faults were injected."""
    injected = 0
    for number, step in enumerate(steps):
        if deadline is not None and deadline():
            break
        nemesis = REGISTRY[step.op]
        active = None
        try:
            history.event("start", step.op, f"#{number} {step}")
            active = nemesis.start(bed, step.params)
            injected += 1
            history.event("note", step.op, active.description)
            sleep(step.hold_s)
        finally:
            if active is not None:
                active.heal()
            history.event("heal", step.op, f"#{number}")
        sleep(step.gap_s)
    return injected


def describe(steps: list[Step]) -> str:
    return "\n".join(f"  #{n} {step}" for n, step in enumerate(steps))
