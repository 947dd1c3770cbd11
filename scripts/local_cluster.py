#!/usr/bin/env python
"""A local 3-node cluster on 127.0.0.1:9990-9992 in the foreground (make cluster).

Each node keeps its data in ./data/<port>; every output line is prefixed with
the node's port. A demo admin login is made on every node and printed. Ctrl-C
or SIGTERM stops all three and exits 0.
"""

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = "9990,9991,9992"
STOP_DEADLINE_S = 10.0

# Runs before runnode: the kernel SIGKILLs the node if this script dies
# without stopping it (even by SIGKILL); PDEATHSIG survives exec.
LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("launcher: parent already gone")
os.execv(sys.argv[2], sys.argv[2:])
"""

output_lock = threading.Lock()


def say(line: str, stream=sys.stdout) -> None:
    with output_lock:
        stream.write(line + "\n")
        stream.flush()


def busy(host: str, port: int) -> bool:
    """Whether something already listens on host:port (as gunicorn binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def pump(proc: subprocess.Popen, port: int) -> None:
    """Copy the node's output to ours, each line prefixed with its port."""
    for raw in proc.stdout:
        say(f"[{port}] {raw.decode(errors='replace').rstrip()}")


def start_node(host: str, port: int, cluster: str, data_root: Path) -> subprocess.Popen:
    data_dir = data_root / str(port)
    data_dir.mkdir(parents=True, exist_ok=True)
    runnode = [
        sys.executable, "manage.py", "runnode",
        "--port", str(port), "--host", host,
        "--cluster", cluster, "--data-dir", str(data_dir),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # Own session: Ctrl-C reaches only this script, which stops the nodes in
    # order rather than having the terminal signal every process at once.
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(os.getpid()), *runnode],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def create_demo_logins(ports: list[int], data_root: Path, username: str, password: str):
    """The same admin login on every node, before it starts (logins are
    local to a node's database, not replicated). Returns an error or None."""
    env = dict(os.environ, RAFT_ADMIN_PASSWORD=password)
    runs = [
        subprocess.Popen(
            [
                sys.executable, "manage.py", "createadmin",
                "--data-dir", str(data_root / str(port)), "--username", username,
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for port in ports
    ]
    for port, run in zip(ports, runs, strict=False):
        _, stderr = run.communicate()
        if run.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines() or ["failed"]
            return f"cannot create the admin login on :{port}: {lines[-1]}"
    return None


def stop_all(procs: dict[int, subprocess.Popen]) -> None:
    """SIGTERM every node; SIGKILL the process group of any still running
    after the deadline."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_S
    for port, proc in procs.items():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"[{port}] did not stop within {STOP_DEADLINE_S:.0f} s; killing it")
        # The worker too, should it have outlived its master.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def banner(host: str, ports: list[int], data_root: Path, login: tuple[str, str]) -> str:
    servers = [f":{p}" for p in ports]
    first, second, third = (servers[i % len(servers)] for i in range(3))
    try:
        shown = data_root.relative_to(Path.cwd())
    except ValueError:
        shown = data_root
    return "\n".join(
        [
            (
                f"Raft cluster: {' '.join(f'{host}:{p}' for p in ports)}"
                f" (data in {shown}/<port>)"
            ),
            "In another terminal, from the project root:",
            f'  .venv/bin/python manage.py clientcommand -m "I like beer." -S {first}',
            f"  .venv/bin/python manage.py print -S {second}",
            f"  .venv/bin/python manage.py count -S {third}",
            f"  .venv/bin/python manage.py status -S {first}",
            # runnode takes RAFT_TLS_* from the environment (README's TLS).
            f"Admin and dashboard: {'https' if os.environ.get('RAFT_TLS_CERT') else 'http'}"
            f"://{host}:{ports[0]}/dashboard/ (any node),"
            f" login {login[0]} / {login[1]}",
            "Ctrl-C stops all nodes.",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", default=DEFAULT_PORTS, help="comma-separated")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument(
        "--admin-password", help="for the demo login; default: a new random one"
    )
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",") if p]
    data_root = args.data_root.resolve()

    for port in ports:
        if busy(args.host, port):
            say(
                f"local_cluster: port {port} on {args.host} is already in use"
                " (another cluster running?)",
                sys.stderr,
            )
            return 1

    # Random unless given: a node may listen beyond loopback (--host).
    password = args.admin_password or secrets.token_urlsafe(9)
    error = create_demo_logins(ports, data_root, args.admin_user, password)
    if error:
        say(f"local_cluster: {error}", sys.stderr)
        return 1

    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    cluster = ",".join(f"{args.host}:{p}" for p in ports)
    procs: dict[int, subprocess.Popen] = {}
    pumps = []
    try:
        for port in ports:
            procs[port] = start_node(args.host, port, cluster, data_root)
            pump_thread = threading.Thread(
                target=pump, args=(procs[port], port), daemon=True
            )
            pump_thread.start()
            pumps.append(pump_thread)
        say(banner(args.host, ports, data_root, (args.admin_user, password)))
        exited = set()
        while not stopping.wait(0.2):
            for port, proc in procs.items():
                if port not in exited and proc.poll() is not None:
                    exited.add(port)
                    say(f"[{port}] exited with code {proc.returncode}")
            if len(exited) == len(procs):
                say("local_cluster: every node has exited", sys.stderr)
                return 1
    finally:
        stop_all(procs)
        for pump_thread in pumps:
            pump_thread.join(timeout=2.0)
    say("local_cluster: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
