"""gunicorn settings for one Raft node, used by ``manage.py runnode``.

One worker process with threads: the Raft state lives in that process, and
the runtime's loop thread runs beside the request threads.
"""

import ctypes
import os
import signal

bind = os.environ["RAFT_BIND"]
workers = 1
worker_class = "gthread"
# Each client command holds a thread until it commits; 64 clients at once
# plus peer RPC must not queue behind each other.
threads = int(os.environ.get("RAFT_THREADS", "128"))
backlog = 2048
keepalive = 75
graceful_timeout = 5
# The worker's liveness check; the loop never blocks the worker's main loop.
timeout = 30
accesslog = None
errorlog = "-"
loglevel = os.environ.get("RAFT_GUNICORN_LOGLEVEL", "warning")
_PR_SET_PDEATHSIG = 1


def post_fork(server, worker):
    # A node is one process to the operator: if the master dies, even by
    # SIGKILL, the worker dies with it instead of holding the port.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker.ppid:  # the master died before prctl
        os._exit(1)


def post_worker_init(worker):
    from consensus.bootstrap import start_runtime
    from raftsite.accounts import prepare_accounts

    # Logins and sessions have their own database (raftsite.routers); the
    # runtime migrates the Raft database itself.
    prepare_accounts()
    start_runtime()


def worker_exit(server, worker):
    from consensus.bootstrap import stop_runtime

    stop_runtime()
