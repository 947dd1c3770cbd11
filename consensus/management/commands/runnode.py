"""``manage.py runnode``: serve one Raft node (HTTP server and Raft loop)."""

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consensus.addresses import InvalidAddress, normalise_address
from consensus.datadir import DataDirectoryInUse, DataDirLock
from consensus.tls import TLSConfigError, TLSFiles
from raftsite import security


class Command(BaseCommand):
    help = (
        "Run one Raft node: gunicorn serves the Django app (client API, peer "
        "RPC, admin) and the election and replication loop runs in the same "
        "process. SIGTERM or Ctrl-C stops it cleanly."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "-p", "--port", type=int, required=True, help="port to serve on"
        )
        parser.add_argument(
            "-c",
            "--cluster",
            default="",
            help="the initial voting members, comma-separated (e.g. ':9990,:9991,:9992'); "
            "read only when the data directory is new; default: just this server",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="host to bind and to advertise (default 127.0.0.1)",
        )
        parser.add_argument(
            "--data-dir",
            help="where this node keeps its SQLite database "
            "(default ~/.raftsite/<host>_<port>)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=128,
            help="request threads in the server process (default 128)",
        )
        for name, what in (
            ("cert", "this node's certificate (PEM)"),
            ("key", "the private key of --tls-cert (PEM)"),
            ("ca", "the CA certificate every node's certificate is signed by"),
        ):
            variable = f"RAFT_TLS_{name.upper()}"
            parser.add_argument(
                f"--tls-{name}",
                metavar="FILE",
                default=os.environ.get(variable) or None,
                help=f"serve HTTPS: {what} (default ${variable}); "
                "give all three or none",
            )
        parser.add_argument(
            "--insecure",
            action="store_true",
            help="listen beyond loopback without the security settings "
            "(test networks only; a warning at every start)",
        )

    def handle(self, *args, **options):
        # Every file the node makes (LOCK, databases, snapshots, its secret
        # key) for its owner only; the exec'd server keeps the umask.
        umask = os.umask(0o077)
        try:
            self._run(options)
        finally:
            # Reached only if runnode stops before exec (a refusal, a test).
            os.umask(umask)

    def _run(self, options):
        port, host = options["port"], options["host"]
        if not 0 < port < 65536:
            raise CommandError(f"invalid port {port}: must be 1-65535")
        try:
            node_id = normalise_address(f"{host}:{port}")
            cluster = [
                normalise_address(a) for a in options["cluster"].split(",") if a.strip()
            ]
        except InvalidAddress as exc:
            raise CommandError(str(exc)) from exc
        if len(set(cluster)) != len(cluster):
            raise CommandError("--cluster names a server twice")
        cluster = cluster or [node_id]
        host_name = security.host_of(node_id)
        try:
            auth = security.client_auth(os.environ, host_name, options["insecure"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self._check_network(
            host_name, options["insecure"], dict(os.environ, RAFT_AUTH=auth)
        )
        tls = _tls_environment(options)
        data_dir = Path(
            options["data_dir"] or Path.home() / ".raftsite" / f"{host}_{port}"
        ).expanduser()
        try:
            # For the owner only: the log, the logins and the secret key.
            warning = security.private_data_dir(data_dir)
            if not os.environ.get("DJANGO_SECRET_KEY"):
                security.node_secret_key(data_dir)
        except OSError as exc:
            raise CommandError(
                f"cannot create data directory {data_dir}: {exc.strerror or exc}"
            ) from None
        # Fail fast, in one line, if a node already runs on this directory.
        # Only a check: the runtime in the server process takes the lock for
        # its lifetime, so a second node started at the same instant still
        # stops there, after a bounded wait (RAFT_LOCK_TIMEOUT_S).
        lock = DataDirLock(data_dir)
        try:
            lock.acquire()
        except DataDirectoryInUse as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        lock.release()
        if warning:
            self.stderr.write(warning)
        if options["threads"] < 4:
            raise CommandError("--threads must be at least 4")
        max_clients = os.environ.get("RAFT_MAX_CLIENT_REQUESTS")
        if max_clients is not None and not (
            max_clients.isdigit() and 1 <= int(max_clients) < options["threads"]
        ):
            raise CommandError(
                "RAFT_MAX_CLIENT_REQUESTS must be at least 1 and below --threads "
                f"({options['threads']}): peer RPC needs threads of its own"
            )
        env = dict(
            os.environ,
            **tls,
            RAFT_NODE_ID=node_id,
            RAFT_CLUSTER=",".join(cluster),
            RAFT_DATA_DIR=str(data_dir.resolve()),
            RAFT_BIND=f"{host}:{port}",
            RAFT_THREADS=str(options["threads"]),
            RAFT_AUTH=auth,
            PYTHONUNBUFFERED="1",
        )
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:raftsite.gunicorn_conf",
            # Shows in ps and pgrep, so an operator can find this node.
            "--name",
            f"raftnode {node_id}",
            "raftsite.wsgi:application",
        ]
        sys.stdout.flush()
        # Replace this process, so signals sent to runnode's pid reach
        # gunicorn's master directly.
        os.chdir(Path(__file__).resolve().parents[3])
        os.execve(sys.executable, argv, env)

    def _check_network(self, host: str, insecure: bool, environ) -> None:
        """Refuse, in one line, to listen beyond loopback without what that
        needs (raftsite.security.NETWORK_REQUIREMENTS), unless --insecure,
        which warns at every start."""
        missing = []
        if not security.is_loopback(host):
            missing = security.missing_for_network(environ)
        if insecure:
            self.stderr.write(
                f"warning: --insecure: the checks for a node beyond loopback "
                f"are off ({'; '.join(missing) or 'none missing now'}); "
                "use it on test networks only"
            )
        elif missing:
            raise CommandError(
                f"refusing to listen on {host} beyond loopback: "
                + "; ".join(missing)
                + " (runnode --insecure overrides this on a test network)"
            )


def _tls_environment(options) -> dict[str, str]:
    """RAFT_TLS_* for the server process: absolute paths (it runs from the
    project root), checked to load, or all empty without TLS."""
    given = {n: options[f"tls_{n}"] for n in ("cert", "key", "ca")}
    if not any(given.values()):
        return {"RAFT_TLS_CERT": "", "RAFT_TLS_KEY": "", "RAFT_TLS_CA": ""}
    missing = [f"--tls-{n}" for n, path in given.items() if not path]
    if missing:
        raise CommandError(
            f"TLS needs --tls-cert, --tls-key and --tls-ca; missing {', '.join(missing)}"
        )
    paths = {n: str(Path(path).expanduser().resolve()) for n, path in given.items()}
    try:
        TLSFiles(**paths).check()
    except TLSConfigError as exc:
        raise CommandError(str(exc)) from None
    return {f"RAFT_TLS_{n.upper()}": path for n, path in paths.items()}
