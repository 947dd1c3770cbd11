"""Starts and stops this process's NodeRuntime from Django settings."""

from django.apps import apps
from django.conf import settings

from .history import StatusHistory
from .parts import load_parts
from .runtime import NodeRuntime, RuntimeSettings
from .snapshots.policy import policy_from_settings
from .state_machine import StateMachine
from .tls import tls_files


def start_runtime(owner_pid: int | None = None) -> NodeRuntime:
    """``owner_pid``: the pid the data directory's lock names (the node's
    gunicorn master, which an operator would stop)."""
    config = apps.get_app_config("consensus")
    tls = tls_files(settings)
    runtime = NodeRuntime(
        settings.RAFT_NODE_ID,
        settings.RAFT_CLUSTER,
        RuntimeSettings(
            tick_seconds=settings.RAFT_TICK_MS / 1000,
            heartbeat_ticks=settings.RAFT_HEARTBEAT_TICKS,
            election_timeout_ticks=settings.RAFT_ELECTION_TIMEOUT_TICKS,
            thrifty=settings.RAFT_THRIFTY,
            secret=settings.RAFT_CLUSTER_SECRET,
            tls_context=tls.client_context() if tls is not None else None,
            catchup_timeout_s=settings.RAFT_CATCHUP_TIMEOUT_S,
            lock_timeout_s=settings.RAFT_LOCK_TIMEOUT_S,
            owner_pid=owner_pid,
            snapshot_policy=policy_from_settings(),
        ),
        state_machine=StateMachine(
            settings.RAFT_NODE_ID,
            session_ttl_s=settings.RAFT_SESSION_TTL_S,
            max_answers=settings.RAFT_SESSION_MAX_ANSWERS,
            kv_history_entries=settings.RAFT_KV_HISTORY_ENTRIES,
            parts=load_parts(settings.RAFT_STATE_PARTS),
        ),
        data_dir=settings.RAFT_DATA_DIR,
    )
    runtime.start()
    config.runtime = runtime
    # The dashboard's charts: the last minutes, whether anyone watches.
    runtime.history = StatusHistory(runtime.status).start()
    return runtime


def stop_runtime() -> None:
    config = apps.get_app_config("consensus")
    runtime, config.runtime = config.runtime, None
    if runtime is not None:
        history = getattr(runtime, "history", None)
        if history is not None:
            history.stop()
        runtime.stop()
