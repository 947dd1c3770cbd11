"""Fault operations (nemeses), a registry of them, and seeded schedules.

A schedule is a list of steps planned from a seed alone: which operation,
its parameters, how long the fault holds and the pause before the next one.
Only a target named "leader" is resolved when the step runs. Process
faults live here; network_ops.py and membership_ops.py register theirs the
same way (subclass Nemesis, call ``register``): schedules then draw them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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

    # Membership (membership_ops): the leader's view (index -> voter), the
    # running servers, a change through ``via``, and its outcome's record.
    rng: random.Random

    def configuration(self) -> dict[int, bool] | None: ...
    def live(self) -> list[int]: ...
    def change_membership(self, kind: str, i: int, via: int) -> str: ...
    def membership_outcome(self, kind, i, via, outcome: str, detail: str) -> None: ...


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
    first: list[str] | None = None,
) -> list[Step]:
    """Steps drawn from ``seed`` until their hold and gap times add up to
    ``duration_s``; with ``cover``, every operation once (in a seeded
    order) before the random draws; ``hold_scale`` shortens (or lengthens)
    every hold; ``first`` names operations to start with, in that order
    (each planned from the seed as usual). The same arguments always give
    the same schedule."""
    rng = random.Random(seed)
    ops = available(capabilities, size, names)
    if not ops:
        raise ValueError("no nemesis applies to this test bed")
    lead = available(capabilities, size, first) if first else []
    lead = [REGISTRY[name] for name in first or [] if REGISTRY[name] in lead]
    # Popped from the end: the ``first`` ones, then the covering ones.
    pending = (rng.sample(ops, len(ops)) if cover else []) + lead[::-1]
    steps, total = [], 0.0
    while total < duration_s or pending:
        if pending:
            nemesis = pending.pop()
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


# The other operations live in their own modules and register themselves
# on import (at the end of this module: they import the names above).


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


# Registers their operations on import; last, since they use this module.
from . import network_ops  # noqa: E402,F401,I001
from . import membership_ops  # noqa: E402,F401
from . import powercut_ops  # noqa: E402,F401
from . import snapshot_ops  # noqa: E402,F401
