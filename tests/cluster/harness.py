"""LocalCluster: real ``runnode`` processes on loopback, for end-to-end tests.

Each node runs in its own session (a process group: the gunicorn master and
its worker), so a signal reaches the whole node. Used by tests and bench.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]

# Short timeouts: a node that does not answer status quickly is not live.
STATUS_TIMEOUT = (0.5, 1.0)
WRITE_TIMEOUT = (1.0, 10.0)
POLL_INTERVAL = 0.05
# An event line: "YYYY/MM/DD HH:MM:SS <event>" (CONTRACT.md).
EVENT_LINE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (.*)$")

# Every node process group this interpreter started and has not yet seen
# exit; the atexit hook kills what is left if a caller forgot to close().
_LIVE_GROUPS: set[int] = set()

# Started before runnode: ask the kernel to SIGKILL the node when the process
# that started it dies, even by SIGKILL, then exec runnode. PDEATHSIG
# survives exec, and runnode's worker dies with its master.
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("launcher: parent already gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


def _kill_leftovers():
    for pgid in list(_LIVE_GROUPS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _LIVE_GROUPS.clear()


atexit.register(_kill_leftovers)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports nothing listens on now (bound to port 0 together, then freed)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in a process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def manage(*args, timeout=60) -> subprocess.CompletedProcess:
    """Run ``python manage.py <args>`` from the project root; capture output."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_failure(result: subprocess.CompletedProcess) -> str:
    """Assert a non-zero exit with exactly one line of output and no
    traceback, as CONTRACT.md asks of a failed client command; return it."""
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, lines
    return lines[0]


class WaitTimeout(AssertionError):
    """A polled condition did not become true before its deadline."""


def wait_until(predicate, timeout=10.0, message="condition", interval=POLL_INTERVAL):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Exceptions from the predicate count as "not yet"; the last one (or the
    last falsy value) is named in the WaitTimeout raised at the deadline.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - reported at the deadline
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"{message}: not true after {timeout:.1f} s (last: {last!r})"
            )
        time.sleep(interval)


class Node:
    """One runnode server: its address, data directory and current process."""

    def __init__(self, index: int, host: str, port: int, data_dir: Path, log_dir: Path):
        self.index = index
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.incarnation = -1  # bumped on every start
        self.paused = False
        self.scheme = "http"  # "https" for a node on TLS

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stdout_path(self, incarnation: int | None = None) -> Path:
        inc = self.incarnation if incarnation is None else incarnation
        return self.log_dir / f"node-{self.port}.{inc}.stdout"

    def stderr_path(self, incarnation: int | None = None) -> Path:
        inc = self.incarnation if incarnation is None else incarnation
        return self.log_dir / f"node-{self.port}.{inc}.stderr"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self):
        state = "running" if self.running() else "down"
        if self.paused:
            state = "paused"
        return f"<Node {self.address} {state}>"


class LocalCluster:
    """N runnode processes on free loopback ports, each with its own data dir.

    Call close() (or use it as a context manager) to kill every process it
    started; an atexit hook and PR_SET_PDEATHSIG are safety nets. Start and
    restart nodes from one thread: PDEATHSIG fires when that thread exits.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: Path,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        ports: list[int] | None = None,
        python: str = sys.executable,
        members: int | None = None,
        root: Path = ROOT,
    ):
        """``members``: only the first so many nodes are in --cluster (all
        by default); the others start as non-members, to be added.
        ``root``: the checkout whose manage.py runs (bench/ab.py compares
        two)."""
        self.root = Path(root)
        self.base_dir = Path(base_dir)
        self.members = size if members is None else members
        self.host = host
        self.python = python
        self.env = dict(env or {})
        ports = ports or free_ports(size, host)
        log_dir = self.base_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [
            Node(i, host, port, self.base_dir / f"data-{port}", log_dir)
            for i, port in enumerate(ports)
        ]
        self.started_at: float | None = None
        self.http = requests.Session()

    # -- processes ---------------------------------------------------------

    @property
    def cluster_arg(self) -> str:
        return ",".join(n.address for n in self.nodes[: self.members])

    def start_members(self, leader_timeout: float = 20.0) -> LocalCluster:
        """Start the initial members and wait for their leader."""
        for node in self.nodes[: self.members]:
            self.start_node(node)
        self.leader(timeout=leader_timeout)
        return self

    def argv(self, node: Node) -> list[str]:
        runnode = [
            self.python, "manage.py", "runnode",
            "--port", str(node.port),
            "--host", node.host,
            "--cluster", self.cluster_arg,
            "--data-dir", str(node.data_dir),
        ]  # fmt: skip
        return [self.python, "-c", _LAUNCHER, str(os.getpid()), *runnode]

    def node_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        return env

    def start(self) -> LocalCluster:
        self.started_at = time.monotonic()
        for node in self.nodes:
            self.start_node(node)
        return self

    def start_node(self, node) -> Node:
        node = self.node(node)
        if node.running():
            raise RuntimeError(f"{node.address} is already running")
        # As runnode makes it: for its owner only (no warning to tighten it).
        node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        node.incarnation += 1
        node.paused = False
        with (
            open(node.stdout_path(), "wb") as out,
            open(node.stderr_path(), "wb") as err,
        ):
            node.proc = subprocess.Popen(
                self.argv(node),
                cwd=self.root,
                env=self.node_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        _LIVE_GROUPS.add(node.proc.pid)
        return node

    def kill(self, node, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
        """Send ``sig`` to the node's whole process group; for SIGKILL, wait
        until every process of the group is gone."""
        node = self.node(node)
        if node.proc is None:
            return
        pgid = node.proc.pid
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            node.proc.wait(timeout=timeout)
            wait_until(
                lambda: not group_members(pgid), timeout, f"{node.address} group gone"
            )
            node.paused = False
            _LIVE_GROUPS.discard(pgid)

    def kill_all(self) -> None:
        # Signal every node first so they die as nearly at once as possible.
        for node in self.nodes:
            if node.running():
                os.killpg(node.proc.pid, signal.SIGKILL)
        for node in self.nodes:
            self.kill(node)

    def stop(self, node, timeout: float = 10.0) -> bool:
        """SIGTERM the node's master, as ``kill <pid>`` would; SIGKILL the
        group if it has not exited by the deadline. Returns whether it
        stopped by itself (master exited and no process of it left)."""
        node = self.node(node)
        if not node.running():
            self.kill(node)  # reap and clear leftovers, if any
            return True
        if node.paused:
            self.resume(node)
        pgid = node.proc.pid
        node.proc.send_signal(signal.SIGTERM)
        clean = True
        try:
            node.proc.wait(timeout=timeout)
            wait_until(lambda: not group_members(pgid), 2.0, "worker gone", 0.02)
        except (subprocess.TimeoutExpired, WaitTimeout):
            clean = False
        self.kill(node)
        return clean

    def pause(self, node) -> None:
        node = self.node(node)
        os.killpg(node.proc.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, node) -> None:
        node = self.node(node)
        os.killpg(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def restart(self, node) -> Node:
        """Start the node again on the same port and data directory (stopping
        it cleanly first if it is still running)."""
        node = self.node(node)
        if node.running():
            self.stop(node)
        else:
            self.kill(node)
        return self.start_node(node)

    def close(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                try:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for node in self.nodes:
            if node.proc is not None:
                try:
                    self.kill(node, timeout=5.0)
                except Exception:  # noqa: BLE001 - best effort at teardown
                    pass
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- addressing ---------------------------------------------------------

    def node(self, which) -> Node:
        """A Node from a Node, an index, a port or an address."""
        if isinstance(which, Node):
            return which
        if isinstance(which, int):
            if 0 <= which < len(self.nodes):
                return self.nodes[which]
            for n in self.nodes:
                if n.port == which:
                    return n
        if isinstance(which, str):
            for n in self.nodes:
                if which in (n.address, f":{n.port}"):
                    return n
        raise KeyError(which)

    def live_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.running() and not n.paused]

    def others(self, node) -> list[Node]:
        node = self.node(node)
        return [n for n in self.nodes if n is not node]

    # -- HTTP ------------------------------------------------------------------

    def get(self, node, path, timeout=STATUS_TIMEOUT, **params) -> requests.Response:
        return self.http.get(
            self.node(node).base_url + path, params=params, timeout=timeout
        )

    def post(
        self, node, path, json=None, timeout=WRITE_TIMEOUT, **kw
    ) -> requests.Response:
        return self.http.post(
            self.node(node).base_url + path, json=json, timeout=timeout, **kw
        )

    def status(self, node) -> dict:
        """GET /api/status (raises on a connection error or non-200)."""
        r = self.get(node, "/api/status")
        r.raise_for_status()
        return r.json()

    def try_status(self, node) -> dict | None:
        try:
            return self.status(node)
        except (requests.RequestException, ValueError):
            return None

    def submit(self, node, command: str, **fields) -> requests.Response:
        """POST /api/commands; ``fields`` may add client_id and seq."""
        return self.post(node, "/api/commands", {"command": command, **fields})

    def write(self, node, command: str, **fields) -> dict:
        """Submit a command and return the 200 answer (AssertionError otherwise)."""
        r = self.submit(node, command, **fields)
        assert (
            r.status_code == 200
        ), f"{command!r} via {self.node(node).address}: {r.status_code} {r.text}"
        return r.json()

    def log(self, node, start: int = 1) -> list[dict]:
        """Every committed entry the node holds from ``start``, via /api/log."""
        entries = []
        while True:
            page = self.get(
                node, "/api/log", timeout=(0.5, 5.0), limit=1000, **{"from": start}
            )
            page.raise_for_status()
            batch = page.json()["entries"]
            if not batch:
                return entries
            entries.extend(batch)
            start = batch[-1]["index"] + 1

    # -- waiting -----------------------------------------------------------

    def wait_until(
        self, predicate, timeout=10.0, message="condition", interval=POLL_INTERVAL
    ):
        """wait_until, with every node's state and output tail on failure."""
        try:
            return wait_until(predicate, timeout, message, interval)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.describe()}") from None

    def agreed_leader(self) -> Node | None:
        """The leader every live node agrees on now, or None."""
        live = self.live_nodes()
        statuses = {}
        for n in live:
            s = self.try_status(n)
            if s is None:
                return None
            statuses[n.address] = s
        leaders = [a for a, s in statuses.items() if s["role"] == "leader"]
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        term = statuses[leader]["term"]
        for s in statuses.values():
            if s["role"] == "none":
                continue
            if s["leader"] != leader or s["term"] != term:
                return None
        return self.node(leader)

    def leader(self, timeout: float = 10.0) -> Node:
        """Wait until the live nodes agree on a single leader; return it."""
        return self.wait_until(
            self.agreed_leader, timeout, "one leader agreed by all live nodes"
        )

    def wait_applied(self, index: int, nodes=None, timeout: float = 10.0) -> None:
        """Wait until every given (default: live) node applied ``index``."""
        nodes = [self.node(n) for n in (nodes or self.live_nodes())]

        def applied():
            return all(
                (self.try_status(n) or {}).get("last_applied", -1) >= index
                for n in nodes
            )

        self.wait_until(
            applied, timeout, f"index {index} applied on {[n.address for n in nodes]}"
        )

    # -- output ------------------------------------------------------------

    def stdout_lines(self, node, all_incarnations: bool = False) -> list[str]:
        node = self.node(node)
        incs = range(node.incarnation + 1) if all_incarnations else [node.incarnation]
        lines = []
        for inc in incs:
            path = node.stdout_path(inc)
            if path.exists():
                lines.extend(path.read_text(errors="replace").splitlines())
        return lines

    def events(self, node, all_incarnations: bool = False) -> list[str]:
        """The node's stdout event lines without their timestamps."""
        events = []
        for line in self.stdout_lines(node, all_incarnations):
            m = EVENT_LINE.match(line)
            if m:
                events.append(m.group(1))
        return events

    def stderr_lines(self, node) -> list[str]:
        path = self.node(node).stderr_path()
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def describe(self, tail: int = 15) -> str:
        """Every node's status and the tail of its output, for failures."""
        parts = [f"cluster logs: {self.base_dir / 'logs'}"]
        for n in self.nodes:
            parts.append(
                f"--- {n!r} pid={n.pid} status={self.try_status(n) if n.running() and not n.paused else None}"
            )
            for label, lines in (
                ("stdout", self.stdout_lines(n)),
                ("stderr", self.stderr_lines(n)),
            ):
                for line in lines[-tail:]:
                    parts.append(f"  {label}| {line}")
        return "\n".join(parts)
