"""The node's accounts database: its schema, and logins left behind in the
Raft database by the layout before it (both run before the node serves)."""

import logging

from django.conf import settings
from django.core.management import call_command
from django.db import connections

from .routers import ACCOUNTS_DB, RAFT_DB

logger = logging.getLogger("raft")


def prepare_accounts() -> None:
    """Create or migrate the accounts database; warn of old logins."""
    call_command("migrate", database=ACCOUNTS_DB, verbosity=0, interactive=False)
    stranded = _logins_in_raft_database()
    if stranded:
        # Logins are local and cheap to make again; copying password hashes
        # between schemas of different ages is not worth the risk.
        logger.warning(
            "Logins from before accounts.sqlite3 (%s) stay unused in "
            "db.sqlite3: make them again with "
            "`manage.py createadmin --data-dir %s --username NAME`",
            ", ".join(stranded),
            settings.RAFT_DATA_DIR,
        )
    for alias in (ACCOUNTS_DB, RAFT_DB):
        # This thread is done with both: the loop and requests use their own.
        connections[alias].close()


def _logins_in_raft_database() -> list[str]:
    """The usernames an older layout left in the Raft database, if this
    node's accounts database has no user yet (only read, never changed)."""
    with connections[ACCOUNTS_DB].cursor() as cursor:
        cursor.execute("SELECT 1 FROM auth_user LIMIT 1")
        if cursor.fetchone():
            return []
    raft = connections[RAFT_DB]
    if "auth_user" not in raft.introspection.table_names():
        return []
    with raft.cursor() as cursor:
        cursor.execute("SELECT username FROM auth_user ORDER BY username")
        return [username for (username,) in cursor.fetchall()]
