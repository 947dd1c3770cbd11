"""A private test network: one Linux network namespace per server, joined by
veth pairs to a bridge in the root namespace, with nftables rules for cuts
and packet loss. Root only; everything it makes is named with PREFIX.

Addresses come from 198.18.0.0/15 (RFC 2544, set aside for network tests):
each network takes one free /24, the bridge holds .1 (the test process's
address) and server i holds .(10 + i). Nothing inside a namespace has a
default route, and a blackhole route for the /24 outlives the bridge, so no
test packet can leave the machine, not even while tearing down.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

# Every namespace, link and state file made here starts with this.
PREFIX = "rftf"
# One state file per live network: what to remove if its owner dies.
STATE_DIR = Path("/run") / PREFIX
SUBNET_BASE = "198.18"  # 198.18.0.0/15: benchmarking addresses (RFC 2544)
SUBNET_THIRD_OCTETS = range(100, 250)
# The nftables table each namespace holds while a fault is active.
NFT_TABLE = "rftf_faults"
HOST_OFFSET = 10

_counter = itertools.count(1)


class NetnsError(RuntimeError):
    """A command that sets up or changes the test network failed."""


def run(argv: list[str], *, check: bool = True, input: str | None = None) -> str:
    """Run one ip/nft command; return its stdout, raise NetnsError on failure."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


def unavailable_reason() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (the tests are not running as root)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return (
                f"'{tool}' not found: install the Debian package {package} "
                "(make test does it when run as root)"
            )
    probe = f"{PREFIX}-{_base36(os.getpid())}xprobe"
    try:
        run(["ip", "netns", "add", probe])
        try:
            # What create() needs, tried inside the probe namespace only.
            run(["ip", "-n", probe, "link", "add", "probebr", "type", "bridge"])
            run(["ip", "-n", probe, "link", "add", "probea", "type", "veth",
                 "peer", "name", "probeb"])  # fmt: skip
            run(["ip", "netns", "exec", probe, "nft", "list", "tables"])
        finally:
            run(["ip", "netns", "delete", probe], check=False)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace with nftables here: {exc}"
    return None


def _pid_alive(pid: int, starttime: str | None = None) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    # Field 22 of stat (index 19 after the command) is the start time: it
    # tells a live owner from a new process that reused its pid.
    return starttime is None or fields[19] == starttime


def _own_starttime() -> str:
    with open(f"/proc/{os.getpid()}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def _owner_pid(name: str) -> int | None:
    """The pid in a name made here: PREFIX, one letter, the pid in base 36,
    then "x" and the rest."""
    if not name.startswith(PREFIX):
        return None
    encoded = name[len(PREFIX) + 1 :].split("x", 1)[0]
    try:
        return int(encoded, 36)
    except ValueError:
        return None


def _kill_namespace_processes(namespace: str) -> None:
    pids = run(["ip", "netns", "pids", namespace], check=False).split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class _Lock:
    """An flock held while choosing and claiming a subnet."""

    def __enter__(self):
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._file = open(STATE_DIR / "lock", "w")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def cleanup_leftovers() -> list[str]:
    """Remove what earlier runs whose process has died left behind (state
    files, namespaces, links, routes); a live run's network is left alone.
    Returns what was removed."""
    removed = []
    if not STATE_DIR.exists() and not run(["ip", "netns", "list"], check=False):
        return removed
    with _Lock():
        for path in sorted(STATE_DIR.glob("*.json")):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            if _pid_alive(state["pid"], state.get("starttime")):
                continue
            removed.extend(_destroy(state))
            path.unlink(missing_ok=True)
        # Names with no state file (e.g. a crash between two steps).
        for line in run(["ip", "netns", "list"], check=False).splitlines():
            name = line.split()[0] if line.split() else ""
            pid = _owner_pid(name)
            if pid is not None and not _pid_alive(pid):
                _kill_namespace_processes(name)
                run(["ip", "netns", "delete", name], check=False)
                removed.append(f"netns {name}")
        for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
            parts = line.split(":")
            if len(parts) < 2:
                continue
            name = parts[1].strip().split("@")[0]
            pid = _owner_pid(name)
            if pid is not None and not _pid_alive(pid):
                run(["ip", "link", "delete", name], check=False)
                removed.append(f"link {name}")
    return removed


def _succeeds(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


def _destroy(state: dict) -> list[str]:
    """Remove everything one network's state names; skip what is gone.
    Returns what was removed."""
    removed = []
    for namespace in state.get("namespaces", []):
        _kill_namespace_processes(namespace)
    # The links first: a namespace's veth end may outlive the namespace.
    for link in state.get("veths", []):
        if _succeeds(["ip", "link", "delete", link]):
            removed.append(f"link {link}")
    for namespace in state.get("namespaces", []):
        if _succeeds(["ip", "netns", "delete", namespace]):
            removed.append(f"netns {namespace}")
    if state.get("bridge") and _succeeds(["ip", "link", "delete", state["bridge"]]):
        removed.append(f"link {state['bridge']}")
    # Last: until the bridge is gone, its own route wins over this one.
    subnet = state.get("subnet")
    if subnet and _succeeds(["ip", "route", "delete", "blackhole", subnet]):
        removed.append(f"route blackhole {subnet}")
    return removed


class Network:
    """``size`` namespaces on one bridge. ``hosts[i]`` is server i's address,
    ``gateway`` the root namespace's own address on the bridge.

    Faults are nftables rules in the servers' namespaces: ``apply`` replaces
    them all at once, ``heal`` removes them. ``destroy`` removes everything,
    and is safe to call twice or after a failed ``create``.
    """

    def __init__(self, size: int):
        self.size = size
        # Base 36 keeps interface names within 15 characters for any pid:
        # rftfv<pid: 5>x<count: 2>n<i: 1>.
        self.tag = f"{_base36(os.getpid())}x{_base36(next(_counter))}"
        self.bridge = f"{PREFIX}b{self.tag}"
        self.namespaces = [f"{PREFIX}-{self.tag}-n{i}" for i in range(size)]
        self.veths = [f"{PREFIX}v{self.tag}n{i}" for i in range(size)]
        self.inner = "eth0"  # the veth end inside each namespace
        self.subnet: str | None = None
        self.gateway: str | None = None
        self.hosts: list[str] = []
        self._state_path = STATE_DIR / f"{self.tag}.json"
        for name in [self.bridge, *self.veths]:
            if len(name) > 15:
                raise NetnsError(f"interface name {name!r} is too long")

    # -- lifecycle -----------------------------------------------------------

    def _state(self) -> dict:
        return {
            "pid": os.getpid(),
            "starttime": _own_starttime(),
            "bridge": self.bridge,
            "namespaces": self.namespaces,
            "veths": self.veths,
            "subnet": self.subnet,
        }

    def create(self) -> Network:
        with _Lock():
            octet = self._free_octet()
            prefix = f"{SUBNET_BASE}.{octet}"
            self.subnet = f"{prefix}.0/24"
            self.gateway = f"{prefix}.1"
            self.hosts = [f"{prefix}.{HOST_OFFSET + i}" for i in range(self.size)]
            # The state file first: a crash from here on leaves a record.
            self._state_path.write_text(json.dumps(self._state()))
            run(["ip", "route", "add", "blackhole", self.subnet, "metric", "4000"])
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for i, (namespace, veth) in enumerate(
            zip(self.namespaces, self.veths, strict=False)
        ):
            run(["ip", "netns", "add", namespace])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", self.inner,
                 "netns", namespace])  # fmt: skip
            run(["ip", "link", "set", veth, "master", self.bridge, "up"])
            run(["ip", "-n", namespace, "addr", "add", f"{self.hosts[i]}/24",
                 "dev", self.inner])  # fmt: skip
            run(["ip", "-n", namespace, "link", "set", self.inner, "up"])
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        return self

    def _free_octet(self) -> int:
        routes = run(["ip", "-4", "route", "show", "table", "all"], check=False)
        used = set()
        for path in STATE_DIR.glob("*.json"):
            try:
                subnet = json.loads(path.read_text()).get("subnet") or ""
            except (OSError, ValueError):
                continue
            used.add(subnet)
        for octet in SUBNET_THIRD_OCTETS:
            subnet = f"{SUBNET_BASE}.{octet}.0/24"
            if subnet not in used and f"{SUBNET_BASE}.{octet}." not in routes:
                return octet
        raise NetnsError(f"no free /24 left in {SUBNET_BASE}.0.0/15")

    def destroy(self) -> None:
        """Remove the namespaces (killing what still runs in them), links,
        bridge, route and state file."""
        _destroy(self._state())
        self._state_path.unlink(missing_ok=True)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()

    # -- running things inside -----------------------------------------------

    def exec_prefix(self, i: int) -> list[str]:
        """argv prefix that runs a command inside server i's namespace."""
        return ["ip", "netns", "exec", self.namespaces[i]]

    # -- faults --------------------------------------------------------------

    def apply(self, blocked: set[tuple[int, int]] = frozenset(), loss_percent: int = 0):
        """Replace every fault rule: drop all packets from server a to server
        b for each (a, b) in ``blocked`` (one direction; add (b, a) for a
        full cut), and drop ``loss_percent`` % of the packets between servers
        at random. Traffic to and from the test process is never touched."""
        for i, namespace in enumerate(self.namespaces):
            rules_in, rules_out = [], []
            for a, b in sorted(blocked):
                if b == i:
                    rules_in.append(f"ip saddr {self.hosts[a]} drop")
                if a == i:
                    rules_out.append(f"ip daddr {self.hosts[b]} drop")
            if loss_percent:
                peers = ", ".join(h for j, h in enumerate(self.hosts) if j != i)
                rules_in.append(
                    f"ip saddr {{ {peers} }} numgen random mod 100 < {loss_percent} drop"
                )
            self._load(namespace, rules_in, rules_out)

    def heal(self) -> None:
        """Remove every fault rule."""
        for namespace in self.namespaces:
            self._load(namespace, [], [])

    def rules(self, i: int) -> str:
        """Server i's fault rules as nft lists them (for reports)."""
        return run(self.exec_prefix(i) + ["nft", "list", "ruleset"], check=False)

    def _load(self, namespace: str, rules_in: list[str], rules_out: list[str]) -> None:
        # Declaring then deleting the table makes one atomic script that
        # works whether or not the table exists.
        script = [f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}"]
        if rules_in or rules_out:
            script.append(f"table inet {NFT_TABLE} {{")
            for chain, hook, rules in (("input", "input", rules_in),
                                       ("output", "output", rules_out)):  # fmt: skip
                script.append(f"  chain {chain} {{")
                script.append(f"    type filter hook {hook} priority 0; policy accept;")
                script.extend(f"    {rule}" for rule in rules)
                script.append("  }")
            script.append("}")
        run(
            ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
            input="\n".join(script) + "\n",
        )


def owned_by(pid: int) -> list[str]:
    """Namespaces and links whose name says ``pid`` made them."""
    found = []
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if _owner_pid(name) == pid:
            found.append(f"netns {name}")
    for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":")
        if len(parts) >= 2 and _owner_pid(parts[1].strip().split("@")[0]) == pid:
            found.append(f"link {parts[1].strip().split('@')[0]}")
    return found


def remove(names: list[str]) -> None:
    """Remove namespaces and links named as ``owned_by`` lists them."""
    for item in names:
        kind, name = item.split(" ", 1)
        if kind == "netns":
            _kill_namespace_processes(name)
            run(["ip", "netns", "delete", name], check=False)
        else:
            run(["ip", "link", "delete", name], check=False)
