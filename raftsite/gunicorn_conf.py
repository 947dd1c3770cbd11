"""gunicorn settings for one Raft node, used by ``manage.py runnode``.

One worker process with threads: the Raft state lives in that process, and
the runtime's loop thread runs beside the request threads.
"""

import ctypes
import os
import signal
import sys

bind = os.environ["RAFT_BIND"]
workers = 1
# gthread, with request heads read in its main loop and socket timeouts, so
# slow clients cannot hold the threads peer RPC needs (raftsite/worker.py).
worker_class = "raftsite.worker.RaftThreadWorker"
# Each client command holds a thread until it commits; 64 clients at once
# plus peer RPC must not queue behind each other.
threads = int(os.environ.get("RAFT_THREADS", "128"))
backlog = 2048
keepalive = 75
graceful_timeout = 5
# The worker's liveness check; the loop never blocks the worker's main loop.
timeout = 30
# The worker's heartbeat touches a file at every turn of its main loop; on
# the disk the log is fsynced to, that metadata update waits behind the
# fsyncs (gunicorn's docs: "Blocking os.fchmod"), and no request is taken
# meanwhile. A memory file system has no such wait.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
    worker_tmp_dir = "/dev/shm"
accesslog = None
errorlog = "-"
loglevel = os.environ.get("RAFT_GUNICORN_LOGLEVEL", "warning")
_PR_SET_PDEATHSIG = 1

# TLS (runnode --tls-*): HTTPS, and a client certificate asked of every
# client but required only on /raft/ (consensus.tls.verified_peer), so the
# CLI and browsers connect without one.
if os.environ.get("RAFT_TLS_CERT"):
    certfile = os.environ["RAFT_TLS_CERT"]
    keyfile = os.environ["RAFT_TLS_KEY"]
    ca_certs = os.environ["RAFT_TLS_CA"]
    _ssl_contexts = []

    def ssl_context(config, default_ssl_context_factory):
        # gunicorn asks for a context per connection: make it once (it reads
        # the files) and share it; a reload (SIGHUP) reads them afresh.
        if not _ssl_contexts:
            from consensus.tls import TLSFiles

            _ssl_contexts.append(TLSFiles(certfile, keyfile, ca_certs).server_context())
        return _ssl_contexts[0]


def post_fork(server, worker):
    # A node is one process to the operator: if the master dies, even by
    # SIGKILL, the worker dies with it instead of holding the port.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker.ppid:  # the master died before prctl
        os._exit(1)


def post_worker_init(worker):
    from gunicorn.arbiter import Arbiter

    from consensus.bootstrap import start_runtime
    from consensus.datadir import DataDirectoryDamaged, DataDirectoryInUse
    from raftsite.accounts import prepare_accounts

    # Logins and sessions have their own database (raftsite.routers); the
    # runtime migrates the Raft database itself.
    prepare_accounts()
    # After a reload (SIGHUP) the old worker may still be draining: the
    # runtime waits for it to close the data directory (RAFT_LOCK_TIMEOUT_S,
    # below gunicorn's 30 s worker timeout), so two never run at once.
    try:
        start_runtime(owner_pid=worker.ppid)
    except (DataDirectoryInUse, DataDirectoryDamaged) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        # A worker that cannot boot makes the master give up and exit.
        sys.exit(Arbiter.WORKER_BOOT_ERROR)


def worker_exit(server, worker):
    from consensus.bootstrap import stop_runtime

    stop_runtime()
