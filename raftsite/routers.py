"""Keeps the node's Raft database for Raft state alone.

The Raft database has one writer, the runtime's loop thread. Every other
app (logins, sessions, last_login, the admin's history, content types) is
written from request threads and management commands, so it lives in the
node's accounts database, a second SQLite file in the data directory.
"""

ACCOUNTS_DB = "accounts"
RAFT_DB = "default"
# The apps whose tables only the loop thread writes (nodes has no table
# today; its models belong with the cluster's state if it ever has one).
RAFT_APPS = frozenset({"consensus", "nodes"})


def database_for(app_label: str) -> str:
    if app_label in RAFT_APPS or app_label in _state_app_labels():
        return RAFT_DB
    return ACCOUNTS_DB


def _state_app_labels() -> set[str]:
    """The labels of RAFT_STATE_APPS: a project's replicated state parts
    (consensus/parts.py) are applied by the loop thread with the rest."""
    from django.apps import apps
    from django.conf import settings

    names = set(getattr(settings, "RAFT_STATE_APPS", ()))
    if not names:
        return set()
    return {c.label for c in apps.get_app_configs() if c.name in names}


class AccountsRouter:
    def db_for_read(self, model, **hints):
        return database_for(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return database_for(model._meta.app_label)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == database_for(app_label)
