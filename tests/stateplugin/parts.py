"""A state part a project might write (consensus/parts.py): named counters
that APP entries {"name": ..., "add": n} increase."""

from consensus.parts import StatePart
from consensus.refused import CONFLICT, Refused

from .models import Counter

_TABLE = Counter._meta.db_table


class CounterPart(StatePart):
    name = "counter"
    models = (Counter,)

    def apply(self, cursor, entry, data):
        if not (
            isinstance(data, dict)
            and isinstance(data.get("name"), str)
            and type(data.get("add")) is int
            # SQLite's integers are 64-bit: a larger one would raise in
            # apply (a refusal too, but with SQLite's words).
            and -(2**63) <= data["add"] < 2**63
        ):
            return Refused(CONFLICT, 'data is {"name": <text>, "add": <integer>}')
        cursor.execute(
            f'INSERT INTO "{_TABLE}" ("name", "value") VALUES (%s, %s)'
            ' ON CONFLICT ("name") DO UPDATE SET "value" = "value" + excluded."value"',
            [data["name"], data["add"]],
        )
        return None

    def read(self, cursor, params):
        name = params.get("name")
        if not name:
            raise ValueError("give ?name=")
        cursor.execute(f'SELECT "value" FROM "{_TABLE}" WHERE "name" = %s', [name])
        row = cursor.fetchone()
        return {"name": name, "value": row[0] if row else 0}
