"""What SQL a block runs: through Django's cursor (the ORM, connection.cursor())
and through the loop thread's raw cursor (consensus/sqlite_cursor.py), which
Django's CaptureQueriesContext does not see."""

from contextlib import contextmanager

from django.db import connection
from django.test.utils import CaptureQueriesContext

from consensus.sqlite_cursor import Cursor


@contextmanager
def captured_sql():
    """A list of the statements the block ran, as their text: first the raw
    cursor's in order (an executemany once, whatever its rows), then
    Django's."""
    statements: list[str] = []
    execute, executemany = Cursor.execute, Cursor.executemany

    def recording_execute(self, sql, params=None):
        statements.append(sql)
        return execute(self, sql, params)

    def recording_executemany(self, sql, param_list):
        statements.append(sql)
        return executemany(self, sql, param_list)

    Cursor.execute, Cursor.executemany = recording_execute, recording_executemany
    try:
        with CaptureQueriesContext(connection) as queries:
            yield statements
    finally:
        Cursor.execute, Cursor.executemany = execute, executemany
    # Django records an executemany as "<n> times: <sql>".
    statements.extend(
        q["sql"].split(" times: ", 1)[-1] if q["sql"][:1].isdigit() else q["sql"]
        for q in queries.captured_queries
    )
