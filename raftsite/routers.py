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
    return RAFT_DB if app_label in RAFT_APPS else ACCOUNTS_DB


class AccountsRouter:
    def db_for_read(self, model, **hints):
        return database_for(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return database_for(model._meta.app_label)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == database_for(app_label)
