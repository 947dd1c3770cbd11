"""Django settings for one Raft node.

The environment is read here once; other code reads ``django.conf.settings``.
``manage.py runnode`` sets the RAFT_* variables before it starts the server.
"""

import os
import re
from pathlib import Path

from raftsite import security

BASE_DIR = Path(__file__).resolve().parent.parent

# This node's full address (host:port), the initial voting members (read only
# when the data directory is new) and where its SQLite database lives.
RAFT_NODE_ID = os.environ.get("RAFT_NODE_ID", "")
RAFT_CLUSTER = [a for a in os.environ.get("RAFT_CLUSTER", "").split(",") if a]
RAFT_DATA_DIR = Path(
    os.environ.get("RAFT_DATA_DIR", Path.home() / ".raftsite" / "default")
)
# Peer RPC carries this secret when set; calls without it get 401.
RAFT_CLUSTER_SECRET = os.environ.get("RAFT_CLUSTER_SECRET", "")
# Clients need a token on /api/ (nodes/auth.py) when RAFT_AUTH is
# "required": runnode makes it so beyond loopback (but for --insecure), and
# anyone may ask for it on loopback. Otherwise the API is open.
RAFT_AUTH_REQUIRED = os.environ.get("RAFT_AUTH", "") == "required"
# TLS (runnode --tls-cert/--tls-key/--tls-ca, all three or none): the node
# serves HTTPS, and verifies every other node's certificate against the CA
# when it calls it (consensus/tls.py). A cluster is all-TLS or all-plain.
RAFT_TLS_CERT = os.environ.get("RAFT_TLS_CERT", "")
RAFT_TLS_KEY = os.environ.get("RAFT_TLS_KEY", "")
RAFT_TLS_CA = os.environ.get("RAFT_TLS_CA", "")
# One tick of the consensus core; election and heartbeat timeouts count ticks.
RAFT_TICK_MS = int(os.environ.get("RAFT_TICK_MS", "50"))
RAFT_HEARTBEAT_TICKS = int(os.environ.get("RAFT_HEARTBEAT_TICKS", "2"))
# Raft §5.2: drawn from [T, 2T) ticks, so 400-750 ms, four heartbeats or
# more. A failover (a crashed leader to the first write after) takes the
# earlier of the followers' draws (core README, departure 12), a median
# about 0.5 s; with T = 10 it was 0.57-0.75 s from run to run. The core's
# own default (RaftConfig) stays 10, the simulation's unit.
RAFT_ELECTION_TIMEOUT_TICKS = int(os.environ.get("RAFT_ELECTION_TIMEOUT_TICKS", "8"))
# "0": a leader sends new entries to every follower at once (Raft §5.3),
# not only to the majority a commit needs (consensus/core/leader.py).
RAFT_THRIFTY = os.environ.get("RAFT_THRIFTY", "1") != "0"
# "0" serves every request through a pool thread and Django, none inline
# in the worker's main loop (raftsite/inline_routes.py).
RAFT_INLINE_REQUESTS = os.environ.get("RAFT_INLINE_REQUESTS", "1") != "0"
# How long a client write may wait for commitment before 504 timeout.
RAFT_COMMAND_TIMEOUT_S = float(os.environ.get("RAFT_COMMAND_TIMEOUT_S", "5"))
# How long a server being added may take to catch up (dissertation §4.2.1)
# before the change fails with 422 catchup_failed.
RAFT_CATCHUP_TIMEOUT_S = float(os.environ.get("RAFT_CATCHUP_TIMEOUT_S", "30"))
RAFT_MAX_COMMAND_BYTES = 64 * 1024
# How long a starting runtime waits for another to let go of the data
# directory (a reloading node's old worker, draining) before it refuses.
RAFT_LOCK_TIMEOUT_S = float(os.environ.get("RAFT_LOCK_TIMEOUT_S", "20"))
# Peers never starve (raftsite/client_limit.py, raftsite/worker.py): at most
# RAFT_MAX_CLIENT_REQUESTS requests other than /raft/ in flight (503
# overloaded beyond), leaving the rest of the RAFT_THREADS request threads to
# peer RPC; a request head must arrive within RAFT_READ_TIMEOUT_S, and every
# later read or write on its socket waits at most that long.
RAFT_THREADS = int(os.environ.get("RAFT_THREADS", "128"))
RAFT_MAX_CLIENT_REQUESTS = int(
    os.environ.get("RAFT_MAX_CLIENT_REQUESTS", str(max(1, RAFT_THREADS * 3 // 4)))
)
# GET /api/health/ready answers 503 while this node's applied index is more
# than this many entries behind the commit index it knows.
RAFT_READY_MAX_LAG = int(os.environ.get("RAFT_READY_MAX_LAG", "1000"))
RAFT_READ_TIMEOUT_S = float(os.environ.get("RAFT_READ_TIMEOUT_S", "10"))
# Raft §7: a snapshot of the applied state every RAFT_SNAPSHOT_ENTRIES applied
# entries; once it is durable the log keeps RAFT_SNAPSHOT_TRAILING entries
# behind it (a follower just behind catches up without a snapshot).
RAFT_SNAPSHOT_ENTRIES = int(os.environ.get("RAFT_SNAPSHOT_ENTRIES", "10000"))
RAFT_SNAPSHOT_TRAILING = int(os.environ.get("RAFT_SNAPSHOT_TRAILING", "5000"))
# Client sessions (consensus/sessions.py, README "Client sessions"): a
# client's session ends after RAFT_SESSION_TTL_S without a command (by the
# leaders' clocks, as stamped in the log), and it is forgotten after twice
# that. At most RAFT_SESSION_MAX_ANSWERS answers are kept per client: enough
# for any client's commands in flight (the CLI has one at a time; a
# pipelining client its window), at about 150 bytes each on disk with the
# index. Both decide what is applied: the same on every server.
RAFT_SESSION_TTL_S = float(os.environ.get("RAFT_SESSION_TTL_S", "3600"))
RAFT_SESSION_MAX_ANSWERS = int(os.environ.get("RAFT_SESSION_MAX_ANSWERS", "1000"))
# Watches see the key-value changes of the last RAFT_KV_HISTORY_ENTRIES log
# indexes (410 compacted before); the same on every server of a cluster.
RAFT_KV_HISTORY_ENTRIES = int(os.environ.get("RAFT_KV_HISTORY_ENTRIES", "100000"))

# DJANGO_SECRET_KEY, else a node's own key kept in its data directory (made
# at its first start); a process serving no node's directory gets a
# development key.
SECRET_KEY = security.secret_key(os.environ, RAFT_DATA_DIR, serving=bool(RAFT_NODE_ID))
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
# A node answers requests addressed to any host name or address it serves on,
# and only those (400 otherwise): a web page whose name resolves to a node's
# address (DNS rebinding) cannot drive it. RAFT_ALLOWED_HOSTS adds names,
# e.g. a proxy's.
ALLOWED_HOSTS = security.allowed_hosts(
    RAFT_NODE_ID, os.environ.get("RAFT_ALLOWED_HOSTS", "")
)
# Browsers share cookies between the ports of one host: each node names its
# login and CSRF cookies after itself, so logging in to one node of a local
# cluster does not log the operator out of another.
_COOKIE_SUFFIX = re.sub(r"[^A-Za-z0-9]", "_", RAFT_NODE_ID) or "default"
SESSION_COOKIE_NAME = f"raft_session_{_COOKIE_SUFFIX}"
CSRF_COOKIE_NAME = f"raft_csrf_{_COOKIE_SUFFIX}"
# Over TLS the browser sends the login and CSRF cookies over HTTPS only.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = bool(RAFT_TLS_CERT)

# A project's own replicated state (consensus/parts.py): the Django apps
# holding its parts' models (kept in the Raft database), and the parts.
RAFT_STATE_APPS = [a for a in os.environ.get("RAFT_STATE_APPS", "").split(",") if a]
RAFT_STATE_PARTS = [p for p in os.environ.get("RAFT_STATE_PARTS", "").split(",") if p]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # The OpenAPI schema (GET /api/schema/) and, from the sidecar's static
    # files, its Swagger UI and Redoc pages (/api/docs/, /api/redoc/).
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "consensus",
    "nodes",
    *RAFT_STATE_APPS,
]

# Django's stack; POST /api/commands and /raft/ skip the four that serve
# only the admin and dashboard (raftsite/hot_paths.py).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "raftsite.hot_paths.HotPathSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "raftsite.hot_paths.HotPathCsrfViewMiddleware",
    "raftsite.hot_paths.HotPathAuthenticationMiddleware",
    "raftsite.hot_paths.HotPathMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "raftsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "raftsite.wsgi.application"

# Durable means on disk before acknowledged: WAL with a full fsync at every
# commit. busy_timeout lets readers wait out a writer instead of failing.
_SQLITE_OPTIONS = {
    "init_command": (
        "PRAGMA journal_mode=WAL;PRAGMA synchronous=FULL;PRAGMA busy_timeout=5000"
    ),
    "transaction_mode": "IMMEDIATE",
}
# A request thread keeps its SQLite connections (CONN_MAX_AGE None): an
# SQLite connection is a file handle, and opening one per request ran the
# PRAGMAs above each time (raftsite/wsgi.py drops the per-request check).
DATABASES = {
    # The Raft log and term/vote. Only the runtime's loop thread writes it,
    # so it never waits on SQLite's lock behind a request.
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": RAFT_DATA_DIR / "db.sqlite3",
        "OPTIONS": dict(_SQLITE_OPTIONS),
        "CONN_MAX_AGE": None,
    },
    # This node's logins, sessions and admin history, which request threads
    # and createadmin write (raftsite.routers sends every app but consensus
    # and nodes here).
    "accounts": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": RAFT_DATA_DIR / "accounts.sqlite3",
        "OPTIONS": dict(_SQLITE_OPTIONS),
        "CONN_MAX_AGE": None,
    },
}
DATABASE_ROUTERS = ["raftsite.routers.AccountsRouter"]

# Admin passwords: Django's four validators (createadmin's random ones pass).
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The admin's login form refuses for the rest of a RAFT_LOGIN_WINDOW_S window
# once a username has failed RAFT_LOGIN_MAX_FAILURES times from one address,
# or an address RAFT_LOGIN_MAX_FAILURES_PER_ADDRESS times in all
# (raftsite/login_throttle.py).
RAFT_LOGIN_WINDOW_S = int(os.environ.get("RAFT_LOGIN_WINDOW_S", "60"))
RAFT_LOGIN_MAX_FAILURES = int(os.environ.get("RAFT_LOGIN_MAX_FAILURES", "5"))
RAFT_LOGIN_MAX_FAILURES_PER_ADDRESS = int(
    os.environ.get("RAFT_LOGIN_MAX_FAILURES_PER_ADDRESS", "20")
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": (
        "raftsite.negotiation.ShortcutContentNegotiation"
    ),
    # Client tokens and a follower's word for its caller (nodes/auth.py);
    # each view says which permission it needs (open views: none).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "nodes.auth.VouchedCallerAuthentication",
        "nodes.auth.ClusterTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["nodes.auth.HasPermission"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "nodes.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# GET /api/schema/ (nodes/schema.py): the client API only, no /raft/.
SPECTACULAR_SETTINGS = {
    "TITLE": "raftsite client API",
    "DESCRIPTION": (
        "The client API of a node of a Raft cluster (CONTRACT.md, HTTP API and "
        "Key-value store). Any server answers; a follower forwards writes to "
        "the leader and says so. Every error is "
        '`{"error": "<code>", "detail": "<text>"}` with a 4xx or 5xx status.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["nodes.schema.client_api_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "nodes.schema.add_common_answers",
        "nodes.schema_limits.any_of",
        "nodes.schema_limits.add_links",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH /api/users/<username> needs its one field: not a partial body.
    "COMPONENT_SPLIT_PATCH": False,
    # Peers vouching for a forwarded caller is not for clients: tokens only.
    "AUTHENTICATION_WHITELIST": ["nodes.auth.ClusterTokenAuthentication"],
    # No network at run time: the pages' assets are the sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # The original toy's log lines: "YYYY/MM/DD HH:MM:SS <event>".
        "event": {"format": "%(asctime)s %(message)s", "datefmt": "%Y/%m/%d %H:%M:%S"},
    },
    "handlers": {
        # A StreamHandler that writes a long `Logs [...]` line in pieces.
        "stdout": {
            "class": "consensus.eventlog.EventHandler",
            "stream": "ext://sys.stdout",
            "formatter": "event",
            # A print's Logs [...] line is read and written off the loop.
            "background": True,
        },
    },
    "loggers": {
        "raft": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
