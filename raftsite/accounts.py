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
            "%d admin login(s) from before accounts.sqlite3 stay unused in "
            "db.sqlite3: make them again with "
            "`manage.py createadmin --data-dir %s --username NAME`",
            stranded,
            settings.RAFT_DATA_DIR,
        )
    for alias in (ACCOUNTS_DB, RAFT_DB):
        # This thread is done with both: the loop and requests use their own.
        connections[alias].close()


def _logins_in_raft_database() -> int:
    """How many users an older layout left in the Raft database, if this
    node's accounts database has none yet."""
    with connections[ACCOUNTS_DB].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM auth_user")
        if cursor.fetchone()[0]:
            return 0
    raft = connections[RAFT_DB]
    if "auth_user" not in raft.introspection.table_names():
        return 0
    with raft.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM auth_user")
        return cursor.fetchone()[0]
