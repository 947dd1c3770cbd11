"""CPU cost of the core's steps for one command, in microseconds.

A 3-node cluster of RaftNodes in one process, driven as the runtime's loop
drives them (consensus/runtime.py _run_once): every call's Ready is merged
into the batch's Ready, then node.status() is read (_publish_status). The
first server is elected by ticking it alone and delivering every message
until none is left (as tests/core/simulation.py's Cluster.elect does); then,
per command, one client at a time:

    leader.propose([one Proposal])          -> an AppendEntries per follower
    follower.step(AppendEntries)             -> its reply (leader_commit has
                                                advanced to the previous
                                                command, as in steady state)
    leader.step(first reply)                 -> commits the entry
    leader.step(second reply)                -> progress only

Nothing is persisted or sent: the core assumes a Ready durable by its next
call, and holds its own log. Each repeat runs ``--commands`` commands and
takes the median of each step; the figures are the median over ``--repeats``
(time.process_time_ns, less the cost of reading the clock).

``--against DIR`` also loads DIR/consensus/core (another checkout, say the
commit before a change) as a second core and runs the same commands on a
cluster of each, alternating repeats, so both see the same machine; each
prints a hash of every Ready and Status its run produced, which match when
the two behave identically (``--digest`` prints it for one core).

    .venv/bin/python bench/core_steps.py
    .venv/bin/python bench/core_steps.py --log 5000 --commands 1000 --repeats 31
    .venv/bin/python bench/core_steps.py --against /tmp/main-checkout
    .venv/bin/python bench/core_steps.py --profile propose   # cProfile one step
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import enum
import hashlib
import importlib
import importlib.util
import pstats
import random
import statistics
import sys
from pathlib import Path
from time import process_time_ns
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

STEPS = (
    "propose",
    "follower step AE",
    "leader step reply (commits)",
    "leader step reply (2nd)",
    "leader status()",
    "follower status()",
)
# Steps timed on both followers at once.
PER = {"follower step AE": 2, "follower status()": 2}
IDS = [f"10.0.0.{i}:9990" for i in (1, 2, 3)]


def load_core(root: Path, name: str) -> ModuleType:
    """``root``/consensus/core imported as package ``name`` (its imports
    are all relative); returns its node module."""
    directory = root / "consensus" / "core"
    spec = importlib.util.spec_from_file_location(
        name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.node")


def canonical(value) -> str:
    """A repr independent of the hash seed (sets sorted) and of which
    package the classes came from, for the digests."""
    if dataclasses.is_dataclass(value):
        fields = (
            (f.name, canonical(getattr(value, f.name)))
            for f in dataclasses.fields(value)
        )
        return f"{type(value).__name__}({', '.join(f'{n}={v}' for n, v in fields)})"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        items = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


class Bench:
    def __init__(self, node_module: ModuleType, seed: int = 7):
        self.core = node_module
        RaftNode, RaftConfig = node_module.RaftNode, node_module.RaftConfig
        rng = random.Random(seed)
        bootstrap = node_module.bootstrap_entries(IDS)
        self.nodes = {
            id: RaftNode(
                RaftConfig(id=id),
                random.Random(rng.getrandbits(64)),
                entries=bootstrap,
            )
            for id in IDS
        }
        self.leader = self.nodes[IDS[0]]
        self.followers = [self.nodes[id] for id in IDS[1:]]
        pending = []
        while not pending:
            pending.extend(self.leader.tick().messages)
        while pending:
            message = pending.pop(0)
            pending.extend(self.nodes[message.dest].step(message).messages)
        assert self.leader.leader_state is not None, "no leader"
        self.seq = 0
        self.digest = hashlib.sha256()

    def _record(self, *values) -> None:
        for value in values:
            self.digest.update(canonical(value).encode())

    def command(self, times: list[list[int]] | None, record: bool = False) -> None:
        """One command through the cluster; adds each step's ns to times."""
        core, leader, clock = self.core, self.leader, process_time_ns
        Ready = core.Ready
        self.seq += 1
        proposals = [core.Proposal(f"command {self.seq}", "bench-client", self.seq)]
        cost = [0] * len(STEPS)
        steps = []

        t0 = clock()
        ready = Ready()
        ready.merge(leader.propose(proposals))
        t1 = clock()
        cost[0] = t1 - t0
        steps.append(ready)
        requests = [m for m in ready.messages if isinstance(m, core.AppendEntries)]
        assert len(requests) == 2 and len(requests[0].entries) == 1, ready

        replies = []
        for request in requests:
            follower = self.nodes[request.dest]
            t0 = clock()
            ready = Ready()
            ready.merge(follower.step(request))
            t1 = clock()
            cost[1] += t1 - t0
            steps.append(ready)
            (reply,) = ready.messages
            assert reply.success, reply
            replies.append(reply)

        commit_before = leader.commit_index
        for n, reply in enumerate(replies):
            t0 = clock()
            ready = Ready()
            ready.merge(leader.step(reply))
            t1 = clock()
            cost[2 + n] = t1 - t0
            steps.append(ready)
        assert leader.commit_index == commit_before + 1

        t0 = clock()
        status = leader.status()
        t1 = clock()
        cost[4] = t1 - t0
        steps.append(status)
        for follower in self.followers:
            t0 = clock()
            status = follower.status()
            t1 = clock()
            cost[5] += t1 - t0
            steps.append(status)
        if record:
            for value in steps:
                self.digest.update(canonical(value).encode())
        if times is not None:
            for step_times, ns in zip(times, cost, strict=True):
                step_times.append(ns)


def clock_overhead() -> float:
    """ns one clock read costs: what a pair of reads adds to an interval."""
    samples = []
    for _ in range(9):
        n = 100_000
        start = process_time_ns()
        for _ in range(n):
            process_time_ns()
            process_time_ns()
        samples.append((process_time_ns() - start) / n / 2)
    return statistics.median(samples)


def measure(benches: list[Bench], repeats: int, commands: int, record: bool):
    """Per bench, per step: the median ns of each repeat. The benches take
    turns, one repeat each, so a busy moment of the machine falls on all;
    the order alternates (A B B A ...) so neither always goes first."""
    medians = [[[] for _ in STEPS] for _ in benches]
    turns = list(zip(benches, medians, strict=True))
    for repeat in range(repeats):
        for bench, bench_medians in turns if repeat % 2 == 0 else turns[::-1]:
            times: list[list[int]] = [[] for _ in STEPS]
            for _ in range(commands):
                bench.command(times, record)
            for step_medians, step_times in zip(bench_medians, times, strict=True):
                # The median, not the mean: a step the scheduler or a
                # neighbour's cache disturbed does not move it.
                step_medians.append(statistics.median(step_times))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=int, default=2000, help="entries beforehand")
    parser.add_argument("--commands", type=int, default=500, help="per repeat")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--digest", action="store_true")
    parser.add_argument("--against", type=Path, metavar="DIR")
    parser.add_argument("--profile", choices=["all", "propose", "follower", "leader"])
    args = parser.parse_args()

    cores = {"this": load_core(ROOT, "core_this")}
    if args.against is not None:
        cores[str(args.against)] = load_core(args.against, "core_against")
    record = args.digest or args.against is not None
    benches = [Bench(core, args.seed) for core in cores.values()]
    for bench in benches:
        for _ in range(args.log):
            bench.command(None, record)

    if args.profile:
        profile(benches[0], args.profile, args.commands)
        return

    overhead = clock_overhead()
    medians = measure(benches, args.repeats, args.commands, record)
    print(
        f"core steps, us per step: median of {args.repeats} repeats of"
        f" {args.commands} commands' medians, log from {args.log + 1} entries"
        f" (a clock read, {overhead / 1000:.2f} us, subtracted; spread: the"
        " repeats' max - min)"
    )
    names = list(cores)
    print(f"  {'':30s}" + "".join(f"{name[-20:]:>24s}" for name in names))
    for n, step in enumerate(STEPS):
        row = ""
        for bench_medians in medians:
            repeats = [ns / PER.get(step, 1) - overhead for ns in bench_medians[n]]
            spread = max(repeats) - min(repeats)
            row += f"{statistics.median(repeats) / 1000:13.2f} ({spread / 1000:5.2f})  "
        print(f"  {step:30s}{row}")
    row = ""
    for bench_medians in medians:
        total = sum(
            statistics.median(repeats) - overhead * PER.get(step, 1)
            for step, repeats in zip(STEPS, bench_medians, strict=True)
        )
        row += f"{total / 1000:13.2f}          "
    print(f"  {'one command, all nodes':30s}{row}")
    if len(benches) == 2:
        # Paired: each repeat of one against the same repeat of the other.
        print("  this / against, median of the repeats' ratios:")
        for n, step in enumerate(STEPS):
            per = PER.get(step, 1)
            ratios = [
                (a / per - overhead) / (b / per - overhead)
                for a, b in zip(medians[0][n], medians[1][n], strict=True)
            ]
            print(f"    {step:30s} {statistics.median(ratios):6.3f}")
    if record:
        for name, bench in zip(names, benches, strict=True):
            print(f"digest {bench.digest.hexdigest()}  {name}")


def profile(bench: Bench, which: str, commands: int) -> None:
    """cProfile one kind of step (the others run unprofiled)."""
    profiler = cProfile.Profile()
    if which == "all":
        profiler.enable()
        for _ in range(commands):
            bench.command(None)
        profiler.disable()
    else:
        cls = bench.core.RaftNode
        name = "propose" if which == "propose" else "step"
        method = getattr(cls, name)
        want_leader = which != "follower"

        def profiled(node, *args, **kwargs):
            if (node is bench.leader) != want_leader:
                return method(node, *args, **kwargs)
            profiler.enable()
            try:
                return method(node, *args, **kwargs)
            finally:
                profiler.disable()

        setattr(cls, name, profiled)
        try:
            for _ in range(commands):
                bench.command(None)
        finally:
            setattr(cls, name, method)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
