"""A WSGI middleware that bounds the client requests in flight, so that peer
RPC (/raft/) always finds a request thread. No Django: it runs before it.
"""

import json
import threading

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
    of a long answer holds a thread as surely as a slow view.
    """

    def __init__(self, app, limit: int, in_flight=None):
        """``in_flight``: a gauge of the requests being served (metrics)."""
        self.app = app
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self.in_flight = in_flight or _NoGauge()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(PEER_PREFIX):
            return self.app(environ, start_response)
        if environ.get("PATH_INFO", "").startswith(HEALTH_PREFIX):
            # Health checks answer even under load: an overloaded node is
            # alive, and says itself whether it is ready.
            return self.app(environ, start_response)
        if not self._slots.acquire(blocking=False):
            start_response("503 Service Unavailable", list(OVERLOADED_HEADERS))
            return [OVERLOADED_BODY]
        self.in_flight.inc()
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._release()
            raise
        return _release_on_close(result, self._release, environ)

    def _release(self) -> None:
        self.in_flight.dec()
        self._slots.release()


class _NoGauge:
    def inc(self) -> None:
        pass

    def dec(self) -> None:
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
