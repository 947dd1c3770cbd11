"""The node's event lines on standard output, long ones written in pieces.

Standard library only: settings.LOGGING names EventHandler before Django
has loaded any app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

# Stands in for a Streamed argument while the rest of the line is formatted.
_MARKER = "\x00streamed\x00"


class Streamed:
    """A log argument too long to build in memory: ``pieces()`` yields its
    text in order. EventHandler writes the pieces one by one; any other
    handler gets the joined text through str()."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Callable[[], Iterator[str]]):
        self.pieces = pieces

    def __str__(self) -> str:
        return "".join(self.pieces())


class EventHandler(logging.StreamHandler):
    """A StreamHandler that writes a Streamed argument piece by piece.

    The output is byte for byte what StreamHandler would write for the
    joined text (one line, formatted the same way), so a ``Logs [...]`` line
    of a million messages needs no million-message string.
    """

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or not any(
            isinstance(a, Streamed) for a in args
        ):
            super().emit(record)
            return
        streamed = [a for a in args if isinstance(a, Streamed)]
        try:
            record.args = tuple(_MARKER if isinstance(a, Streamed) else a for a in args)
            try:
                text = self.format(record)
            finally:
                record.args = args
            parts = text.split(_MARKER)
            stream = self.stream
            # Handler.handle holds the handler's lock: no other line lands
            # between the pieces.
            for part, value in zip(parts, streamed, strict=False):
                stream.write(part)
                for piece in value.pieces():
                    stream.write(piece)
            stream.write(parts[-1] + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own rule: never raise
            self.handleError(record)
