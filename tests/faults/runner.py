"""One fault run from a seed: start servers (on loopback, or each in its own
network namespace), run clients and a nemesis schedule, heal, wait for the
cluster to settle, then check the history. Used by the tests and chaos.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from tests.cluster.harness import LocalCluster, Node, WaitTimeout

from . import checker, disks, kv_history, nemesis, nodestate, snapshot_ops
from .linearizability import DEFAULT_MAX_STEPS, KvReport
from .netns import Network
from .powercut_ops import POWER
from .wgl import UNKNOWN_VERDICT
from .workload import (
    OK,
    UNKNOWN,
    History,
    KvWorkload,
    Op,
    StatusSampler,
    Workload,
    new_session,
    perform,
)

LEADER_LINE = re.compile(r"Became leader for term (\d+)")
# Where a failed run's files are copied, since pytest's tmp dirs rotate.
FINDINGS_DIR = Path(os.environ.get("RAFT_FAULT_ARTIFACTS", "/tmp/raft-fault-runs"))
FIRST_LEADER_TIMEOUT_S = 20.0
# Servers' environment unless a run sets it (RunConfig.env, chaos --env): an
# add whose catch-up cannot finish (the newcomer killed, paused, cut off)
# fails within 5 s, not 30; and snapshots (Raft §7) small enough that a
# 20 s run takes several on every server, even on a busy machine, and
# compacts the log past a server that was down for a second or two, which
# the leader must then send its snapshot (RAFT_SNAPSHOT_ENTRIES=10000 and
# RAFT_SNAPSHOT_TRAILING=5000 are what a node does by default).
DEFAULT_ENV = {
    "RAFT_CATCHUP_TIMEOUT_S": "5",
    "RAFT_SNAPSHOT_ENTRIES": "100",
    "RAFT_SNAPSHOT_TRAILING": "20",
}
NETNS_PORT = 9990


@dataclass
class RunConfig:
    seed: int
    size: int = 3
    netns: bool = False
    duration_s: float = 30.0  # the schedule's total hold and gap time
    clients: int = 4
    nemeses: list[str] | None = None  # default: every one the bed can run
    settle_timeout_s: float = 30.0
    post_heal_s: float = 3.0  # clients keep going this long after the last heal
    env: dict = field(default_factory=dict)
    cover: bool = False  # every operation at least once (short runs)
    hold_scale: float = 1.0  # shorter holds for short runs
    first: list[str] | None = None  # operations the schedule starts with
    # "lazyfs": every data directory on its own lazyfs mount (power cuts);
    # fsync "lie" makes those mounts ignore fsync (to show lost writes).
    disks: str = "plain"
    fsync: str = "honest"
    warmup_s: float = 0.0  # clients alone this long before the first fault
    # Key-value clients (workload.KvWorkload) on ``kv_keys`` hot keys; each
    # key's linearizability search stops after ``kv_max_steps`` ("unknown").
    kv_clients: int = 3
    kv_keys: int = 3
    kv_max_steps: int = DEFAULT_MAX_STEPS
    # Send every key-value read at this level, recording it as asked: a
    # broken read path, only for the checker's own test (test_kv_faults.py).
    kv_read_as: str | None = None

    def server_env(self) -> dict:
        """The servers' environment: DEFAULT_ENV, then this run's own."""
        return {**DEFAULT_ENV, **self.env}

    def replay_hint(self, test: str | None = None) -> str:
        if test:
            return (
                f"RAFT_FAULTS=all RAFT_FAULT_SEED={self.seed} "
                f".venv/bin/python -m pytest tests/faults -k {test}"
            )
        args = (
            f"--seed {self.seed} --rounds 1 --nodes {self.size} "
            f"--round-seconds {self.duration_s} --clients {self.clients}"
        )
        if self.nemeses:
            args += f" --nemeses {','.join(self.nemeses)}"
        if self.cover:
            args += " --cover"
        if self.first:
            args += f" --first {','.join(self.first)}"
        if self.hold_scale != 1.0:
            args += f" --hold-scale {self.hold_scale:g}"
        if self.disks != "plain":
            args += f" --disks {self.disks}"
        if self.fsync != "honest":
            args += f" --fsync {self.fsync}"
        if self.warmup_s:
            args += f" --warmup-s {self.warmup_s:g}"
        if (self.kv_clients, self.kv_keys) != (3, 3):
            args += f" --kv-clients {self.kv_clients} --kv-keys {self.kv_keys}"
        if self.kv_max_steps != DEFAULT_MAX_STEPS:
            args += f" --kv-max-steps {self.kv_max_steps}"
        if self.kv_read_as:
            args += f" --kv-read-as {self.kv_read_as}"
        for name, value in sorted(self.env.items()):
            args += f" --env {name}={value}"
        if not self.netns:
            args += " --loopback"
        return f".venv/bin/python -m tests.faults.chaos {args}"


@dataclass
class RunResult:
    config: RunConfig
    schedule: list[nemesis.Step]
    history: History
    violations: list[checker.Violation]
    stats: dict
    artifacts: Path
    liveness_error: str | None = None
    kv: KvReport | None = None  # the key-value checks' report

    @property
    def ok(self) -> bool:
        return not self.violations and self.liveness_error is None

    def report(self, test: str | None = None) -> str:
        lines = [
            f"fault run seed={self.config.seed} size={self.config.size} "
            f"netns={self.config.netns}: {'PASS' if self.ok else 'FAIL'}",
            f"replay: {self.config.replay_hint(test)}",
            f"artifacts: {self.artifacts}",
            "servers' env: "
            + " ".join(f"{k}={v}" for k, v in sorted(self.config.server_env().items())),
            "schedule:",
            nemesis.describe(self.schedule),
            "stats: " + json.dumps(self.stats, sort_keys=True),
        ]
        if self.kv is not None:
            lines.append(
                f"key-value: {self.kv.verdict}; "
                + ", ".join(
                    f"{r.key} {r.verdict} ({r.ops} ops, {r.steps} steps)"
                    for r in self.kv.keys
                )
            )
            for result in self.kv.keys:
                if result.verdict == UNKNOWN_VERDICT:
                    # Not a failure: nothing was found wrong, the search
                    # ran out of steps (RunConfig.kv_max_steps).
                    lines.append(f"NOTE {result}")
        if self.liveness_error:
            lines.append(f"LIVENESS: {self.liveness_error}")
        for violation in self.violations:
            lines.append(f"VIOLATION {violation}")
        return "\n".join(lines)


class NetnsCluster(LocalCluster):
    """LocalCluster whose server i runs inside ``network``'s namespace i,
    on its own address there (ports differ too, so file names do)."""

    def __init__(self, network: Network, *, base_dir: Path, env=None):
        ports = [NETNS_PORT + i for i in range(network.size)]
        # Beyond loopback a node needs a cluster secret (runnode refuses
        # without one); a run's own, unless the run gives one. The fault
        # workload's clients carry no token: a test network's nodes run
        # with --insecure and the client API open (RAFT_AUTH=open).
        env = {
            "RAFT_CLUSTER_SECRET": secrets.token_urlsafe(24),
            "RAFT_AUTH": "open",
            **(env or {}),
        }
        super().__init__(network.size, base_dir=Path(base_dir), env=env, ports=ports)
        log_dir = self.base_dir / "logs"
        self.network = network
        self.nodes = [
            Node(i, host, port, self.base_dir / f"data-{port}", log_dir)
            for i, (host, port) in enumerate(zip(network.hosts, ports, strict=False))
        ]

    def argv(self, node: Node) -> list[str]:
        # `ip netns exec` execs in place: the pid (and so the launcher's
        # parent check and PDEATHSIG) is unchanged.
        prefix = self.network.exec_prefix(node.index)
        return [*prefix, *super().argv(node), "--insecure"]


class TestBed:
    """The servers as the nemesis sees them (nemesis.Bed)."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        cluster: LocalCluster,
        network: Network | None,
        history: History,
        seed,
        lazy_disks: list[disks.Disk] | None = None,
    ):
        self.cluster = cluster
        self.network = network
        self.history = history
        self.size = len(cluster.nodes)
        self.disks = lazy_disks
        self.capabilities = frozenset(
            ({nemesis.NETNS} if network else set()) | ({POWER} if lazy_disks else set())
        )
        self.cuts: list[dict] = []  # one per disk and power cut: what it lost
        self.disk_errors: list[dict] = []  # what each failing disk's server did
        self._failing: dict[int, tuple[str, str]] = {}
        self.rng = random.Random(f"{seed}-runtime")
        self.faults: dict[str, int] = {}
        # kind -> outcome -> count, for the statistics.
        self.membership: dict[str, dict[str, int]] = {}
        self._lag_seq = 0  # the commands wait_compacted_past wrote

    def resolve(self, target) -> int:
        """A server's index; "leader" is the leader of the moment, and
        "follower" a running member of its configuration that is not it."""
        if target not in ("leader", "follower"):
            return int(target)
        leader = _highest_leader(self.cluster)
        if leader is not None and target == "leader":
            return leader.index
        if leader is not None:
            members = self.configuration() or {}
            followers = [i for i in self.live() if i in members and i != leader.index]
            if followers:
                return self.rng.choice(followers)
        i = self.rng.randrange(self.size)
        self.note(f"no {target} known: target {i} instead")
        return i

    def last_log_index(self, i: int) -> int | None:
        """Server i's last log index; if it does not answer (still
        starting), the leader's, which it cannot be far past."""
        for node in (self.cluster.node(i), _highest_leader(self.cluster)):
            status = self.cluster.try_status(node) if node and node.running() else None
            if status:
                return status["last_log_index"]
        return None

    def wait_compacted_past(self, index: int, timeout: float, away: int) -> int | None:
        """Until the leader's log (not server ``away``'s) starts past
        ``index``, at most ``timeout`` seconds, write commands through it
        (client "lag", in the history like any other): the clients may
        spend most of their time on a server paused or cut off. Returns
        its first index then (or the last one seen, or None)."""
        deadline = time.monotonic() + timeout
        first = None
        others = [n for n in self.cluster.live_nodes() if n.index != away]
        session = new_session()
        try:
            while time.monotonic() < deadline:
                leader = _highest_leader(self.cluster, others)
                if leader is None:
                    time.sleep(0.1)  # polling the servers under test
                    continue
                try:
                    r = self.cluster.get(leader, "/api/log", limit=1)
                    first = r.json()["first_index"] if r.status_code == 200 else first
                except (requests.RequestException, ValueError, KeyError):
                    pass
                if first is not None and first > index:
                    return first
                self._write_through(session, leader, 20)
        finally:
            session.close()
        return first

    def _write_through(self, session, leader: Node, count: int) -> None:
        for _ in range(count):
            self._lag_seq += 1
            op = Op(
                "lag", self._lag_seq, f"lag:{self._lag_seq}", leader.address,
                self.history.now(),
            )  # fmt: skip
            self.history.add_op(op)
            perform(session, op, leader.base_url + "/api/commands", (1.0, 5.0))
            op.complete = self.history.now()
            if op.outcome != OK:
                return

    def kill(self, i: int) -> None:
        self.cluster.kill(i)

    def restart(self, i: int) -> None:
        node = self.cluster.node(i)
        if node.running():
            self.cluster.kill(node)
        self.cluster.restart(node)

    def pause(self, i: int) -> None:
        if self.cluster.node(i).running():
            self.cluster.pause(i)

    def resume(self, i: int) -> None:
        if self.cluster.node(i).running():
            self.cluster.resume(i)

    def block(self, blocked, loss_percent: int = 0) -> None:
        self.network.apply(set(blocked), loss_percent)

    def unblock(self) -> None:
        self.network.heal()

    def transfer_leadership(self, to: int | None) -> str:
        """POST /api/leader to the leader of the moment; the answer, in a
        few words (any answer is fine: this is a nemesis, not a check)."""
        leader = self.cluster.node(self.resolve("leader"))
        body = {"to": self.cluster.node(to).address if to is not None else None}
        try:
            r = self.cluster.post(leader, "/api/leader", body, timeout=(1.0, 15.0))
        except Exception as exc:  # noqa: BLE001 - reported in the history
            return f"via {leader.address}: {type(exc).__name__}"
        return f"via {leader.address}: {r.status_code} {r.text[:200]}"

    def note(self, text: str) -> None:
        self.history.event("note", "bed", text)

    # -- power (powercut_ops) ------------------------------------------------

    def power_cut(self, nodes: list[int]) -> str:
        """SIGKILL the servers together, then drop what their disks had not
        fsynced and mount those disks afresh; returns what was lost, in a
        few words. The servers stay down until restart()."""
        for i in nodes:
            node = self.cluster.node(i)
            if node.running():
                os.killpg(node.proc.pid, signal.SIGKILL)
        for i in nodes:
            self.cluster.kill(i)
        lost = []
        for i in nodes:
            answer = self.disks[i].cut()
            self.cuts.append({"node": i, **answer})
            text = f"{i}: {answer['dropped_pages']} pages"
            if answer["truncations_dropped"]:
                text += f" +{answer['truncations_dropped']} truncations"
            if answer["files_removed"]:
                text += f" +files {','.join(answer['files_removed'])}"
            lost.append(text)
        return "lost " + "; ".join(lost)

    def wait_unsynced(self, name: str, timeout: float) -> tuple[int, int] | None:
        """Poll every running server's disk until one holds unsynced pages
        of the file ``name``: (server, pages), or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, disk in enumerate(self.disks):
                if not self.cluster.node(i).running():
                    continue
                pages = disk.command("stats")["unsynced_by_file"].get(name, 0)
                if pages:
                    return i, pages
            time.sleep(0.02)
        return None

    def wait_line(self, i: int, pattern: re.Pattern, timeout: float) -> str | None:
        """Poll server i's stdout (this incarnation) until a line matches
        ``pattern``, at most ``timeout`` seconds: the line, or None."""
        node = self.cluster.node(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and node.running():
            for line in self.cluster.stdout_lines(node):
                if pattern.search(line):
                    return line
            time.sleep(0.01)  # polling the server under test
        return None

    def disk_fail(self, i: int, op: str, code: str) -> None:
        self.disks[i].command(f"fail {op} {code}")
        self._failing[i] = (op, code)

    def disk_heal(self, i: int) -> None:
        """Stop the failures, note what the server did meanwhile, and power
        cycle it."""
        op, code = self._failing.pop(i)
        node = self.cluster.node(i)
        self.disks[i].command("fail none")
        exit_code = node.proc.poll() if node.proc is not None else None
        stderr = [line for line in self.cluster.stderr_lines(node) if line.strip()]
        outcome = {
            "node": i,
            "failing": f"{op} {code}",
            "exit_code": exit_code,  # None: still running
            "stderr_lines": len(stderr),
            "last_stderr": stderr[-1][:300] if stderr else "",
        }
        self.disk_errors.append(outcome)
        self.note(f"disk error on {i}: {outcome}")
        self.power_cut([i])
        self.restart(i)

    # -- membership (membership_ops) --------------------------------------

    def live(self) -> list[int]:
        return [n.index for n in self.cluster.live_nodes()]

    def configuration(self) -> dict[int, bool] | None:
        """index -> voter, as the leader of the moment reports it."""
        leader = _highest_leader(self.cluster)
        if leader is None:
            return None
        try:
            r = self.cluster.get(leader, "/api/servers", timeout=(0.5, 2.0))
            servers = r.json()["servers"] if r.status_code == 200 else None
        except (requests.RequestException, ValueError, KeyError):
            servers = None
        if servers is None:
            return None
        return {self.cluster.node(s["id"]).index: s["voter"] for s in servers}

    def change_membership(self, kind: str, i: int, via: int) -> str:
        """POST /api/servers (add) or DELETE /api/servers/<address> (remove)
        through server ``via``; records and returns the outcome."""
        address = self.cluster.node(i).address
        url = self.cluster.node(via).base_url + "/api/servers"
        session = new_session()
        try:
            if kind == "add":
                r = session.post(url, json={"address": address}, timeout=(1.0, 45.0))
            else:
                r = session.delete(f"{url}/{address}", timeout=(1.0, 45.0))
            try:
                error = r.json().get("error", "") if r.status_code != 200 else ""
            except ValueError:
                error = r.text[:80]
            outcome, detail = str(r.status_code), f"{error} {r.text[:160]}"
        except requests.RequestException as exc:
            outcome, detail = type(exc).__name__, str(exc)[:160]
        finally:
            session.close()
        self.membership_outcome(kind, i, via, outcome, detail)
        return outcome

    def membership_outcome(self, kind, i, via, outcome: str, detail: str) -> None:
        counts = self.membership.setdefault(kind, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        self.history.event(
            "note", "membership", f"{kind} {i} via {via}: {outcome} {detail}".strip()
        )

    def heal_all(self) -> None:
        """Whatever a step may have left: rules, stopped or dead servers."""
        if self.network is not None:
            self.network.heal()
        for i in list(self._failing):
            self.disk_heal(i)
        for node in self.cluster.nodes:
            if node.running() and node.paused:
                self.cluster.resume(node)
            elif not node.running():
                self.cluster.restart(node)


def _highest_leader(cluster: LocalCluster, nodes=None) -> Node | None:
    """The live server that says it leads, in the highest term (or None)."""
    best = None
    for node in nodes if nodes is not None else cluster.live_nodes():
        status = cluster.try_status(node)
        if status and status["role"] == "leader":
            if best is None or status["term"] > best[1]:
                best = (node, status["term"])
    return best[0] if best else None


def members_and_leader(cluster: LocalCluster) -> tuple[Node, list[Node]] | None:
    """The leader and the members (voters and learners) of its configuration,
    once every member agrees on that leader and term; else None. Servers
    outside the configuration (removed ones) are ignored."""
    leader = _highest_leader(cluster)
    if leader is None:
        return None
    try:
        r = cluster.get(leader, "/api/servers", timeout=(0.5, 2.0))
        members = [cluster.node(s["id"]) for s in r.json()["servers"]]
    except (requests.RequestException, ValueError, KeyError):
        return None
    term = None
    for node in members:
        status = cluster.try_status(node) if node.running() else None
        if status is None or status["leader"] != leader.address:
            return None
        if term is None:
            term = status["term"]
        elif status["term"] != term:
            return None
    return leader, members


def leader_lines(cluster: LocalCluster) -> dict[str, list[int]]:
    """The terms of every server's ``Became leader for term N`` lines."""
    lines = {}
    for node in cluster.nodes:
        terms = []
        for line in cluster.stdout_lines(node, all_incarnations=True):
            m = LEADER_LINE.search(line)
            if m:
                terms.append(int(m.group(1)))
        lines[node.address] = terms
    return lines


def settle(cluster: LocalCluster, history: History, timeout: float) -> dict:
    """Wait for one leader agreed by every member of its configuration,
    commit a barrier command through it, and wait until every member has
    committed and applied the same log. Returns the members, too."""
    started = time.monotonic()
    deadline = started + timeout
    session = new_session()
    seq = 0
    try:
        agreed = lambda: members_and_leader(cluster)  # noqa: E731
        leader, members = cluster.wait_until(agreed, timeout, "a leader after healing")
        while True:
            seq += 1
            op = Op("checker", seq, f"checker:{seq}", leader.address, history.now())
            history.add_op(op)
            perform(session, op, leader.base_url + "/api/commands", (1.0, 8.0))
            op.complete = history.now()
            if op.outcome == OK:
                break
            if time.monotonic() > deadline:
                raise WaitTimeout(f"no barrier write committed after {timeout} s: {op}")
            leader, members = cluster.wait_until(
                agreed, max(1.0, deadline - time.monotonic()), "a leader"
            )
        barrier = op.index
        # The configuration may have changed meanwhile (a change in flight).
        leader, members = cluster.wait_until(
            agreed, max(1.0, deadline - time.monotonic()), "the members"
        )

        def same_commit():
            statuses = [cluster.status(n) for n in members]
            commits = {s["commit_index"] for s in statuses}
            applied = {s["last_applied"] for s in statuses}
            return len(commits) == 1 and commits == applied and min(commits) >= barrier

        cluster.wait_until(
            same_commit,
            max(1.0, deadline - time.monotonic()),
            "every server committed alike",
        )
    finally:
        session.close()
    return {
        "barrier_index": barrier,
        "settle_s": round(time.monotonic() - started, 3),
        "members": sorted(n.address for n in members),
    }


def applied_messages(
    cluster: LocalCluster, history: History, members: list[str], timeout: float
) -> dict[str, list[str]]:
    """Commit a ``print`` command through the leader and return, for every
    member, the messages its state machine printed for it (``Logs [...]``):
    what it applied, each command once however often it reached the log."""
    agreed = lambda: members_and_leader(cluster)  # noqa: E731
    leader, _ = cluster.wait_until(agreed, timeout, "a leader for the print")
    seqs = [op.seq for op in history.ops if op.client_id == "checker"]
    seq = 1 + max(seqs, default=0)
    op = Op("checker", seq, "print", leader.address, history.now())
    history.add_op(op)
    session = new_session()
    try:
        perform(session, op, leader.base_url + "/api/commands", (1.0, 8.0))
    finally:
        session.close()
    op.complete = history.now()
    if op.outcome != OK:
        raise WaitTimeout(f"the print command was not acknowledged: {op}")
    cluster.wait_applied(op.index, members, timeout=timeout)
    messages = {}

    def printed():
        for address in members:
            lines = [e for e in cluster.events(address) if e.startswith("Logs [")]
            if lines and lines[-1].endswith(" print]"):
                messages[address] = lines[-1][len("Logs [") : -1].split()
        return len(messages) == len(members)

    cluster.wait_until(printed, timeout, "every member's Logs line")
    return messages


def recovery_times(history: History) -> list[dict]:
    """For each heal: how long until an operation sent after it succeeded
    (None if none did before the next fault started)."""
    heals = [e for e in history.events if e.kind == "heal"]
    starts = sorted(e.time for e in history.events if e.kind == "start")
    acked = sorted(
        (op for op in history.ops if op.outcome == OK and op.client_id != "checker"),
        key=lambda op: op.invoke,
    )
    result = []
    for heal in heals:
        next_start = next((t for t in starts if t > heal.time), None)
        first = next((op for op in acked if op.invoke >= heal.time), None)
        recovered = None
        if first is not None and (next_start is None or first.complete <= next_start):
            recovered = round(first.complete - heal.time, 3)
        result.append(
            {"fault": heal.name, "detail": heal.detail, "recovery_s": recovered}
        )
    return result


def kv_statistics(history: History, report: KvReport, check_s: float) -> dict:
    """What the key-value clients did and how the checks went."""
    ops = history.kv_ops
    by_kind: dict[str, dict[str, int]] = {}
    for op in ops:
        kind = ("cas-" if op.is_cas else "") + op.kind
        if op.kind == kv_history.GET:
            kind += f"-{op.consistency}"
        counts = by_kind.setdefault(kind, {})
        counts[op.outcome] = counts.get(op.outcome, 0) + 1
    return {
        "operations": len(ops),
        "ok": sum(op.outcome == kv_history.OK for op in ops),
        "unknown": sum(op.outcome == kv_history.UNKNOWN for op in ops),
        "retries": len(ops) - len({op.request or id(op) for op in ops}),
        "by_kind": by_kind,
        "verdict": report.verdict,
        "keys": {r.key: [r.verdict, r.ops, r.steps] for r in report.keys},
        "check_s": round(check_s, 2),
    }


def statistics(
    history: History, logs: dict, faults: int, states: dict | None = None
) -> dict:
    ops = [op for op in history.ops if op.client_id != "checker"]
    logged = set()
    for entries in logs.values():
        logged.update(e.get("command") for e in entries if e.get("type") == "command")
    for state in (states or {}).values():
        logged.update(state.messages)  # committed, the log compacted since
    unknown = [op for op in ops if op.outcome == UNKNOWN]
    recoveries = recovery_times(history)
    measured = [r["recovery_s"] for r in recoveries if r["recovery_s"] is not None]
    by_op: dict[str, int] = {}
    for event in history.events:
        if event.kind == "heal" and event.name != "all":
            by_op[event.name] = by_op.get(event.name, 0) + 1
    terms = [s.term for s in history.samples]
    return {
        "operations": len(ops),
        "ok": sum(op.outcome == OK for op in ops),
        "failed": sum(op.outcome == "fail" for op in ops),
        "unknown": len(unknown),
        "unknown_committed": sum(op.command in logged for op in unknown),
        "faults": faults,
        "faults_by_op": by_op,
        "recovery_s_max": max(measured) if measured else None,
        "recovery_s_median": sorted(measured)[len(measured) // 2] if measured else None,
        "heals_without_recovery_before_next_fault": len(recoveries) - len(measured),
        "max_term": max(terms) if terms else None,
        "log_length": max((len(v) for v in logs.values()), default=0),
        "last_index": max((v[-1]["index"] for v in logs.values() if v), default=0),
        "status_samples": len(history.samples),
    }


def _sum_by_file(cuts: list[dict]) -> dict[str, int]:
    total: dict[str, int] = {}
    for cut in cuts:
        for name, pages in cut.get("dropped_by_file", {}).items():
            total[name] = total.get(name, 0) + pages
    return total


def power_statistics(bed: TestBed, lazy_disks: list[disks.Disk]) -> dict:
    """What the power cuts and disk errors did."""
    mounts = sorted(s for d in lazy_disks for s in d.mount_s)
    return {
        "disk_cuts": len(bed.cuts),
        "unsynced_pages_dropped": sum(c["dropped_pages"] for c in bed.cuts),
        "cuts_that_dropped_pages": sum(1 for c in bed.cuts if c["dropped_pages"]),
        "truncations_dropped": sum(c["truncations_dropped"] for c in bed.cuts),
        "new_files_removed": sum(len(c["files_removed"]) for c in bed.cuts),
        # Pages lost per file name, over every cut: unsynced pages of a main
        # database file (not -wal/-shm) mean a checkpoint ran unsynced.
        "dropped_by_file": _sum_by_file(bed.cuts),
        "disk_errors": bed.disk_errors,
        "mount_s_max": round(mounts[-1], 2) if mounts else None,
    }


def read_states(
    cluster: LocalCluster,
) -> tuple[dict[str, nodestate.AppliedState], dict[str, str]]:
    """Every server's applied state from its database, and the servers
    whose database could not be read (why)."""
    states, unreadable = {}, {}
    for node in cluster.nodes:
        try:
            states[node.address] = nodestate.read_applied_state(
                node.data_dir / "db.sqlite3"
            )
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            unreadable[node.address] = repr(exc)
    return states, unreadable


def snapshot_statistics(
    cluster: LocalCluster,
    history: History,
    first_index: dict[str, int],
    unreadable: dict[str, str],
) -> dict:
    """The snapshot event lines of every server (taken, sent, restored from
    a leader), where each log starts at the end, and what the snapshot
    operations (snapshot_ops) did."""
    lines = {
        n.address: cluster.stdout_lines(n, all_incarnations=True) for n in cluster.nodes
    }
    stats = nodestate.snapshot_events(lines)
    stats["first_index"] = first_index
    stats["operations"] = [
        e.detail[:240]
        for e in history.events
        if e.kind == "note"
        and (e.name in snapshot_ops.NAMES or e.detail.startswith("lag_follower"))
    ]
    if unreadable:
        stats["unreadable_states"] = unreadable
    return stats


def run(config: RunConfig, base_dir: Path, log=print) -> RunResult:
    """Run one experiment; every process and network object it made is gone
    when it returns or raises."""
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    history = History(seed=config.seed)
    schedule = nemesis.make_schedule(
        config.seed,
        config.duration_s,
        config.size,
        frozenset(
            ({nemesis.NETNS} if config.netns else set())
            | ({POWER} if config.disks == "lazyfs" else set())
        ),
        config.nemeses,
        cover=config.cover,
        hold_scale=config.hold_scale,
        first=config.first,
    )
    (base_dir / "schedule.txt").write_text(nemesis.describe(schedule) + "\n")
    log(
        f"seed {config.seed}: {len(schedule)} steps, {config.size} servers, "
        f"netns={config.netns} disks={config.disks} snapshots every "
        f"{config.server_env().get('RAFT_SNAPSHOT_ENTRIES')} entries, "
        f"{config.server_env().get('RAFT_SNAPSHOT_TRAILING')} kept"
    )
    violations: list[checker.Violation] = []
    logs: dict[str, list[dict]] = {}
    first_index: dict[str, int] = {}
    states: dict[str, nodestate.AppliedState] = {}
    stats: dict = {}
    liveness_error = None
    faults = 0
    env = config.server_env()
    with contextlib.ExitStack() as stack:
        network = None
        if config.netns:
            network = Network(config.size)
            stack.callback(network.destroy)
            network.create()
            cluster = NetnsCluster(network, base_dir=base_dir, env=env)
        else:
            cluster = LocalCluster(config.size, base_dir=base_dir, env=env)
        cluster.http.trust_env = False  # never through a proxy
        lazy_disks = None
        if config.disks == "lazyfs":
            # Unmounted after the servers are killed (callbacks run last first).
            lazy_disks = [
                disks.Disk(base_dir / f"disk-{n.port}", n.data_dir, config.fsync)
                for n in cluster.nodes
            ]
            for disk in lazy_disks:
                stack.callback(disk.close)
                disk.mount()
        stack.callback(cluster.close)
        history.nodes = [n.address for n in cluster.nodes]
        urls = {n.address: n.base_url for n in cluster.nodes}
        bed = TestBed(cluster, network, history, config.seed, lazy_disks)
        cluster.start()
        cluster.leader(timeout=FIRST_LEADER_TIMEOUT_S)
        phases = {"first_leader": history.now()}
        sampler = StatusSampler(history, urls).start()
        stack.callback(sampler.stop)
        workload = Workload(history, urls, clients=config.clients, seed=config.seed)
        workload.start()
        stack.callback(_quietly, workload.stop)
        kv_workload = KvWorkload(
            history, urls, clients=config.kv_clients, keys=config.kv_keys,
            seed=config.seed, read_as=config.kv_read_as,
        ).start()  # fmt: skip
        stack.callback(_quietly, kv_workload.stop)
        time.sleep(config.warmup_s)  # timing of the experiment
        try:
            faults = nemesis.run_schedule(bed, history, schedule, time.sleep)
        finally:
            bed.heal_all()
            history.event("heal", "all", "final heal")
        phases["healed"] = history.now()
        time.sleep(config.post_heal_s)  # timing of the experiment
        workload.stop()
        kv_workload.stop()
        phases["clients_stopped"] = history.now()
        members, applied = None, {}
        try:
            stats.update(settle(cluster, history, config.settle_timeout_s))
            members = stats["members"]
            applied = applied_messages(cluster, history, members, 15.0)
        except WaitTimeout as exc:
            liveness_error = str(exc)
        try:
            for n in cluster.nodes:
                first_index[n.address], logs[n.address] = nodestate.read_log(cluster, n)
        except Exception as exc:  # noqa: BLE001 - reported as a liveness failure
            liveness_error = (liveness_error or "") + f"\ncannot read the logs: {exc!r}"
        # After the logs: a lagging server's applied state then covers at
        # least what its log read had compacted.
        states, unreadable = read_states(cluster)
        if unreadable and liveness_error is None:
            missing = {a: e for a, e in unreadable.items() if a in (members or [])}
            if missing:
                liveness_error = f"cannot read the applied state of {missing}"
        sampler.stop()
        phases["logs_read"] = history.now()
        terms = leader_lines(cluster)
        # The members' Logs lines, else what the databases hold.
        printed = sorted(applied)
        applied = {
            **{a: s.messages for a, s in states.items() if a not in applied},
            **applied,
        }
        kv_started = time.monotonic()
        kv_report = checker.check_kv_ops(history, config.kv_max_steps)
        kv_check_s = time.monotonic() - kv_started
        violations = checker.check(
            history,
            logs,
            terms,
            settled=liveness_error is None,
            members=members,
            applied=applied,
            first_index=first_index,
            sessions={a: s.sessions for a, s in states.items()},
            kv=kv_report,
        )
        phases["checked"] = history.now()
        stats["phases_s"] = {k: round(v, 1) for k, v in phases.items()}
        stats.update(statistics(history, logs, faults, states))
        stats["kv"] = kv_statistics(history, kv_report, kv_check_s)
        stats["membership"] = bed.membership
        stats["state_machines_checked"] = len(applied)
        stats["retries"] = sum(op.attempt > 0 for op in history.ops)
        stats["retries_ok"] = sum(
            op.attempt > 0 and op.outcome == OK for op in history.ops
        )
        stats["leader_elections"] = sum(len(t) for t in terms.values())
        stats["snapshots"] = snapshot_statistics(
            cluster, history, first_index, unreadable
        )
        stats["applied_from"] = {
            "print": len(printed),
            "database": len(applied) - len(printed),
        }
        if lazy_disks:
            stats["power"] = power_statistics(bed, lazy_disks)
        history.save(base_dir / "history.json")
        (base_dir / "logs.json").write_text(json.dumps(logs))
        (base_dir / "states.json").write_text(
            json.dumps(
                {
                    "first_index": first_index,
                    "printed": printed,
                    "states": {a: s.to_json() for a, s in states.items()},
                }
            )
        )
        if liveness_error:
            liveness_error += "\n" + cluster.describe(tail=30)
    result = RunResult(
        config, schedule, history, violations, stats, base_dir, liveness_error,
        kv_report,
    )  # fmt: skip
    (base_dir / "result.txt").write_text(result.report() + "\n")
    (base_dir / "config.json").write_text(json.dumps(asdict(config)))
    if not result.ok:
        result.artifacts = keep(base_dir, config.seed)
    return result


def _quietly(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - teardown goes on
        print(f"teardown: {exc!r}", file=sys.stderr)


def keep(base_dir: Path, seed: int) -> Path:
    """Copy a failed run's files where pytest will not delete them."""
    target = FINDINGS_DIR / f"seed-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        shutil.copytree(
            base_dir, target, ignore=shutil.ignore_patterns("*.sqlite3-shm")
        )
    except OSError:
        return base_dir
    return target
