"""Safe defaults of a node: what it needs before it listens beyond loopback,
its own Django secret key, the host names it answers and a private data
directory. Standard library only: settings.py imports it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Public (it is in this file): fine for a shell or a test, never for a node.
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-set-DJANGO_SECRET_KEY"
# A node's own key when DJANGO_SECRET_KEY is not given, made at its first
# start: sessions and password-reset links of one node are its own.
SECRET_KEY_FILE = "secret_key"
# A cluster secret anyone could guess protects nothing.
MIN_CLUSTER_SECRET_CHARS = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "[::]")


def host_of(address: str) -> str:
    """The host of a full ``host:port`` address, as written (``[::1]``)."""
    return address.rpartition(":")[0]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as given to ``--host``) is this machine's loopback:
    127.0.0.0/8, ``[::1]`` or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- what a node needs beyond loopback ----------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One thing a node listening beyond loopback must have: ``missing``
    says, for a person, what is wrong with ``environ``, or returns None."""

    missing: Callable[[Mapping[str, str]], str | None]


def _cluster_secret_missing(environ: Mapping[str, str]) -> str | None:
    secret = environ.get("RAFT_CLUSTER_SECRET", "")
    if not secret:
        return "RAFT_CLUSTER_SECRET is not set (the peers' shared secret)"
    if len(secret) < MIN_CLUSTER_SECRET_CHARS:
        return (
            f"RAFT_CLUSTER_SECRET is shorter than {MIN_CLUSTER_SECRET_CHARS} "
            "characters"
        )
    return None


def _secret_key_missing(environ: Mapping[str, str]) -> str | None:
    key = environ.get("DJANGO_SECRET_KEY", "")
    if not key:
        return None  # the node makes its own (node_secret_key)
    if key == DEVELOPMENT_SECRET_KEY or key.startswith("django-insecure-"):
        return "DJANGO_SECRET_KEY is the public development key"
    # Django's deployment check (security.W009) counts such a key as weak.
    if len(key) < 50 or len(set(key)) < 5:
        return (
            "DJANGO_SECRET_KEY is weak (fewer than 50 characters or 5 distinct "
            "ones); unset it to have the node make its own"
        )
    return None


# RAFT_AUTH's values; unset, a node beyond loopback needs tokens (unless
# --insecure) and a loopback node is open.
AUTH_REQUIRED, AUTH_OPEN = "required", "open"


def _client_tokens_missing(environ: Mapping[str, str]) -> str | None:
    if environ.get("RAFT_AUTH", "") == AUTH_OPEN:
        return "clients need no token (RAFT_AUTH=open)"
    return None


# Each is checked when a node listens beyond loopback; a new requirement is
# one more entry.
NETWORK_REQUIREMENTS: list[Requirement] = [
    Requirement(_cluster_secret_missing),
    Requirement(_client_tokens_missing),
    Requirement(_secret_key_missing),
]


def client_auth(environ: Mapping[str, str], host: str, insecure: bool) -> str:
    """RAFT_AUTH as a node on ``host`` runs with: as given, else required
    beyond loopback (open with --insecure, for test networks) and open on
    loopback. ValueError for a value it does not know."""
    given = environ.get("RAFT_AUTH", "")
    if given not in ("", AUTH_REQUIRED, AUTH_OPEN):
        raise ValueError(
            f"RAFT_AUTH must be {AUTH_REQUIRED!r} or {AUTH_OPEN!r} (or unset), "
            f"not {given!r}"
        )
    if given:
        return given
    return AUTH_REQUIRED if not (is_loopback(host) or insecure) else AUTH_OPEN


def missing_for_network(environ: Mapping[str, str]) -> list[str]:
    """What ``environ`` lacks for a node listening beyond loopback."""
    found = (requirement.missing(environ) for requirement in NETWORK_REQUIREMENTS)
    return [text for text in found if text]


# --- the Django secret key ----------------------------------------------------


def secret_key(environ: Mapping[str, str], data_dir: Path, *, serving: bool) -> str:
    """DJANGO_SECRET_KEY when given; else the key of the node whose data
    directory is ``data_dir``: made there by a process ``serving`` it, only
    read by another (an admin beside a stopped node); else (a client
    command, a shell, a test) the development key, which signs nothing
    another machine sees."""
    given = environ.get("DJANGO_SECRET_KEY", "")
    if given:
        return given
    if serving:
        return node_secret_key(data_dir)
    try:
        return _read_key(Path(data_dir) / SECRET_KEY_FILE)
    except OSError:
        return DEVELOPMENT_SECRET_KEY


def node_secret_key(data_dir: Path) -> str:
    """The key in ``data_dir``'s SECRET_KEY_FILE, made (mode 0600) if
    missing. Two processes making it at once agree on the first one."""
    path = Path(data_dir) / SECRET_KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise OSError(f"{path} is empty: delete it to have a new key made")
    return key


# --- ALLOWED_HOSTS ------------------------------------------------------------


def allowed_hosts(node_id: str, extra: str = "") -> list[str]:
    """The host names a node answers: the host it binds (``node_id``'s),
    loopback names for a loopback node, this machine's names and addresses
    for a wildcard bind, and ``extra`` (comma-separated, RAFT_ALLOWED_HOSTS).
    Any other Host header gets 400, so a web page on a name that resolves to
    the node (DNS rebinding) cannot drive it. Without a node (a client
    command, a shell) only loopback names."""
    hosts: list[str] = []
    host = host_of(node_id) if node_id else ""
    if host:
        hosts.append(host)
    if not host or is_loopback(host) or host in WILDCARD_HOSTS:
        hosts += LOOPBACK_NAMES
    if host in WILDCARD_HOSTS:
        hosts += machine_names()
    hosts += [h.strip() for h in extra.split(",") if h.strip()]
    return list(dict.fromkeys(hosts))


def machine_names() -> list[str]:
    """This machine's host name, full name, their addresses and the
    addresses of its network interfaces (what a wildcard bind serves on)."""
    names = [socket.gethostname(), socket.getfqdn()]
    addresses = []
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue
        for family, *_, sockaddr in infos:
            addresses.append(_host_form(family, sockaddr[0]))
    addresses += _interface_addresses()
    return list(dict.fromkeys(n for n in names + addresses if n))


def _host_form(family, ip: str) -> str:
    return f"[{ip}]" if family == socket.AF_INET6 else ip


def _interface_addresses() -> list[str]:
    """The IPv4 address of each interface (ioctl SIOCGIFADDR) and every IPv6
    address (/proc/net/if_inet6); Linux only, empty elsewhere."""
    found = []
    try:
        import fcntl
        import struct

        interfaces = socket.if_nameindex()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in interfaces:
                request = struct.pack("256s", name.encode()[:15])
                try:
                    reply = fcntl.ioctl(probe.fileno(), 0x8915, request)
                except OSError:
                    continue  # no IPv4 address
                found.append(socket.inet_ntoa(reply[20:24]))
    except (ImportError, OSError):
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                raw = line.split()[0]
                ip = ipaddress.IPv6Address(bytes.fromhex(raw))
                found.append(_host_form(socket.AF_INET6, str(ip)))
    except (OSError, ValueError, IndexError):
        pass
    return found


# --- the data directory -------------------------------------------------------

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_data_dir(data_dir: Path) -> str | None:
    """Create ``data_dir`` for its owner only (0700), or take group and
    other permissions away from it and everything in it. Returns a warning
    line if anything was open to other users; raises OSError if the
    directory cannot be made or tightened."""
    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        data_dir.mkdir(mode=0o700)
        return None
    except FileExistsError:
        pass
    paths = [data_dir]
    for root, dirs, files in os.walk(data_dir):
        paths += [Path(root, name) for name in dirs + files]
    tightened = 0
    for path in paths:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not mode & _OTHERS:
            continue
        path.chmod(stat.S_IMODE(mode) & ~_OTHERS)
        tightened += 1
    if not tightened:
        return None
    return (
        f"warning: data directory {data_dir} was open to other users; "
        f"took their access away from {tightened} of its files and folders"
    )
