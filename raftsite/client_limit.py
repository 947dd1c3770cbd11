"""A WSGI middleware that bounds the client requests in flight, so that peer
RPC (/raft/) always finds a request thread. No Django: it runs before it.
"""

import json
import threading
import time

# Seconds a client told ``overloaded`` should wait before it retries.
RETRY_AFTER_S = 1
PEER_PREFIX = "/raft/"
HEALTH_PREFIX = "/api/health/"
OVERLOADED_BODY = json.dumps(
    {
        "error": "overloaded",
        "detail": "This node has too many client requests in flight. Retry later.",
    },
    separators=(",", ":"),
).encode()
OVERLOADED_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(OVERLOADED_BODY))),
    ("Retry-After", str(RETRY_AFTER_S)),
]


class ClientRequestLimit:
    """At most ``limit`` requests outside /raft/ at once; 503 beyond.

    A request counts from the moment it enters until its response has been
    written (the server closes the response iterable), since a slow reader
    of a long answer holds a thread as surely as a slow view. Over the
    same span it is timed, for ``latency`` (metrics).
    """

    def __init__(self, app, limit: int, in_flight=None, latency=None):
        """``in_flight``: a gauge of the requests being served; ``latency``:
        has ``observe(method, path, status, seconds)`` (both metrics)."""
        self.app = app
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self.in_flight = in_flight or _NoGauge()
        self.latency = latency or _NoLatency()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(PEER_PREFIX):
            # Peer RPC is neither limited nor counted as a client request.
            return self.app(environ, start_response)
        started = time.perf_counter()
        # Health checks answer even under load: an overloaded node is
        # alive, and says itself whether it is ready.
        limited = not path.startswith(HEALTH_PREFIX)
        if limited and not self._slots.acquire(blocking=False):
            start_response("503 Service Unavailable", list(OVERLOADED_HEADERS))
            self.latency.observe(
                environ.get("REQUEST_METHOD", ""), path, "503",
                time.perf_counter() - started,
            )  # fmt: skip
            return [OVERLOADED_BODY]
        served = _Served(self, environ, start_response, started, limited)
        if limited:
            self.in_flight.inc()
        try:
            result = self.app(environ, served.start_response)
        except BaseException:
            served.done()
            raise
        return _release_on_close(result, served.done, environ)

    def hold(self) -> bool:
        """Take a slot for a client request served beside this middleware
        (an inline one handed to a pool thread); False if none is free."""
        return self._slots.acquire(blocking=False)

    def let_go(self) -> None:
        """Give back a slot hold() took."""
        self._slots.release()

    def _release(self) -> None:
        self.in_flight.dec()
        self._slots.release()


class _Served:
    """One client request: its status as it starts, and what ends it."""

    __slots__ = ("_limit", "_environ", "_start_response", "_started", "_limited",
                 "_status")  # fmt: skip

    def __init__(self, limit, environ, start_response, started, limited):
        self._limit = limit
        self._environ = environ
        self._start_response = start_response
        self._started = started
        self._limited = limited
        self._status = None

    def start_response(self, status, headers, exc_info=None):
        self._status = status
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)

    def done(self) -> None:
        try:
            if self._limited:
                self._limit._release()
        finally:
            environ = self._environ
            self._limit.latency.observe(
                environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                self._status, time.perf_counter() - self._started,
            )  # fmt: skip


class _NoGauge:
    def inc(self) -> None:
        pass

    def dec(self) -> None:
        pass


class _NoLatency:
    def observe(self, method, path, status, seconds) -> None:
        pass


class _ReleasingIterable:
    def __init__(self, iterable, release):
        self._iterable = iterable
        self._close = getattr(iterable, "close", None)
        self._release = release

    def __iter__(self):
        return iter(self._iterable)

    def close(self):
        try:
            if self._close is not None:
                self._close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def _release_on_close(result, release, environ):
    releasing = _ReleasingIterable(result, release)
    file_wrapper = environ.get("wsgi.file_wrapper")
    if file_wrapper is None or not isinstance(result, file_wrapper):
        return releasing
    # Keep the server's file wrapper, so that it can still use sendfile().
    result.close = releasing.close
    return result
