"""One benchmark client process: ``threads`` closed-loop clients.

Run by bench/run.py as ``python bench/load.py '<json spec>'``; prints one JSON
object with every request's start time and latency. Standard library and
requests only.
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

import requests

# What a failed request raises, with either client.
REQUEST_ERRORS = (requests.RequestException, http.client.HTTPException, OSError)

# Hot keys of the key-value modes: every thread writes and reads these.
KV_KEYS = 16


def request_for(spec, base, prefix, n):
    """(method, url, json) of request ``n`` in the spec's ``mode``:
    "command" (POST /api/commands, the default), "batch" (``batch``
    commands in one POST /api/commands), "kv_put", or "kv_get" with the
    spec's ``consistency``."""
    mode = spec.get("mode", "command")
    if mode == "command":
        return "POST", base + "/api/commands", {"command": f"{prefix}{n}"}
    if mode == "batch":
        commands = [f"{prefix}{n}-{i}" for i in range(spec["batch"])]
        return "POST", base + "/api/commands", {"commands": commands}
    key = f"bench/k{n % KV_KEYS}"
    if mode == "kv_put":
        return "PUT", f"{base}/api/kv/{key}", {"value": f"{prefix}{n}"}
    consistency = spec.get("consistency", "linearizable")
    return "GET", f"{base}/api/kv/{key}?consistency={consistency}", None


class HTTPClientSession:
    """The part of requests.Session this file uses, over one keep-alive
    http.client connection to one server: the lighter of the two clients
    ../shared/bench/compare.sh runs (``"client": "httpclient"``), which
    costs the machine's cores less per request than requests does."""

    def __init__(self, base: str):
        self._base = base
        self._netloc = urlsplit(base).netloc
        self._connection = None

    def request(self, method, url, json=None, timeout=(2, 30)):
        body = None if json is None else _json_bytes(json)
        headers = {} if body is None else {"Content-Type": "application/json"}
        path = url[len(self._base) :]
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self._netloc, timeout=timeout[1]
            )
        try:
            self._connection.request(method, path, body, headers)
            response = self._connection.getresponse()
            response.read()
        except REQUEST_ERRORS:
            self._connection.close()
            self._connection = None
            raise
        return _Answer(response.status)

    def get(self, url, timeout=5):
        return self.request("GET", url, timeout=(timeout, timeout))


class _Answer:
    def __init__(self, status_code: int):
        self.status_code = status_code


def _json_bytes(value) -> bytes:
    return json.dumps(value).encode()


def writer(spec, thread_no, results):
    """Send requests back to back on one keep-alive session until the stop
    time (or until ``per_thread`` succeeded). With ``urls``, thread i uses
    urls[i % len(urls)] (reads spread over the servers)."""
    urls = spec.get("urls") or [spec["url"]]
    base = urls[thread_no % len(urls)]
    if spec.get("client") == "httpclient":
        session = HTTPClientSession(base)
    else:
        session = requests.Session()
    # Open the keep-alive connection before the clock starts.
    try:
        session.get(base + "/api/status", timeout=5)
    except REQUEST_ERRORS:
        pass
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    stop_at = spec.get("stop_at")
    remaining = spec.get("per_thread")
    prefix = f"{spec['prefix']}-{thread_no}-"
    n = 0
    samples, errors = [], {}
    while True:
        if stop_at is not None and time.time() >= stop_at:
            break
        if remaining is not None and remaining <= 0:
            break
        n += 1
        started = time.time()
        method, url, body = request_for(spec, base, prefix, n)
        try:
            r = session.request(method, url, json=body, timeout=(2, 30))
            code = r.status_code
        except REQUEST_ERRORS as exc:
            code = type(exc).__name__
        finished = time.time()
        if code == 200:
            samples.append((started, finished - started))
            if remaining is not None:
                remaining -= 1
        else:
            errors[str(code)] = errors.get(str(code), 0) + 1
            time.sleep(0.01)  # do not spin on a failing server
    results[thread_no] = (samples, errors)


def main():
    spec = json.loads(sys.argv[1])
    results = {}
    threads = [
        threading.Thread(target=writer, args=(spec, i, results))
        for i in range(spec["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples, errors = [], {}
    for thread_samples, thread_errors in results.values():
        samples.extend(thread_samples)
        for code, count in thread_errors.items():
            errors[code] = errors.get(code, 0) + count
    json.dump({"samples": samples, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
