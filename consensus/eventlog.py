"""The node's event lines on standard output, long ones written in pieces.

Standard library only: settings.LOGGING names EventHandler before Django
has loaded any app.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator

# Stands in for a Streamed argument while the rest of the line is formatted.
_MARKER = "\x00streamed\x00"

# Characters that could end an event line or rewrite the terminal it shows
# on: C0 controls (newline, carriage return, ESC...), DEL, C1 controls and
# Unicode's line and paragraph separators. A command's text passes through
# an event line with each of them escaped, so it cannot forge a line such as
# "Became leader for term 9".
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``,
    ``\\x1b``, ``\\u2028``); printable text, backslashes included, as is."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_one, text)


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
    """A StreamHandler that writes a Streamed argument piece by piece, and
    escapes the control characters of every text argument (escape_controls):
    an event line is always one line.

    The output is byte for byte what StreamHandler would write for the
    joined text (one line, formatted the same way), so a ``Logs [...]`` line
    of a million messages needs no million-message string.

    With ``background`` a line with a Streamed argument is written by a
    thread of its own, and so is every line logged until it is out, so
    the order of lines stays the order they were logged: the Raft loop,
    which logs the ``Logs [...]`` line of a print, does not wait the half
    second a million messages take to read and write.
    """

    def __init__(self, stream=None, background: bool = False):
        super().__init__(stream)
        self._background = background
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        # Lines queued and not yet written; while any is, every line queues.
        self._pending = 0
        self._pending_lock = threading.Lock()

    def set_background(self, background: bool) -> None:
        """Write lines with a Streamed argument on a thread of their own,
        or not (lines already queued are still written in order)."""
        with self._pending_lock:
            self._background = background

    def emit(self, record: logging.LogRecord) -> None:
        if self._background or self._pending:
            with self._pending_lock:
                if self._pending or (self._background and _has_streamed(record)):
                    self._pending += 1
                    self._start_writer()
                    self._queue.put(record)
                    return
        self._write(record)

    def close(self) -> None:
        """Write what is queued, then close (logging.shutdown at exit)."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._queue.put(None)
            writer.join(timeout=30)
        super().close()

    def _start_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=self._drain, name="raft-event-writer", daemon=True
            )
            self._writer.start()

    def _drain(self) -> None:
        while (record := self._queue.get()) is not None:
            self._write(record)
            with self._pending_lock:
                self._pending -= 1

    def _write(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple):
            super().emit(record)
            return
        if not any(isinstance(a, Streamed) for a in args):
            record.args = tuple(_escaped(a) for a in args)
            try:
                super().emit(record)
            finally:
                record.args = args
            return
        streamed = [a for a in args if isinstance(a, Streamed)]
        try:
            record.args = tuple(
                _MARKER if isinstance(a, Streamed) else _escaped(a) for a in args
            )
            try:
                text = self.format(record)
            finally:
                record.args = args
            parts = text.split(_MARKER)
            stream = self.stream
            # Handler.handle holds the handler's lock, or (background) the
            # lines logged meanwhile wait in the queue: no other line lands
            # between the pieces.
            for part, value in zip(parts, streamed, strict=False):
                stream.write(part)
                for piece in value.pieces():
                    stream.write(escape_controls(piece))
            stream.write(parts[-1] + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own rule: never raise
            self.handleError(record)


def _escaped(arg):
    return escape_controls(arg) if isinstance(arg, str) else arg


def _has_streamed(record: logging.LogRecord) -> bool:
    args = record.args
    return isinstance(args, tuple) and any(isinstance(a, Streamed) for a in args)
