"""One benchmark client process: ``threads`` closed-loop writers.

Run by bench/run.py as ``python bench/load.py '<json spec>'``; prints one JSON
object with every request's start time and latency. Standard library and
requests only.
"""

import json
import sys
import threading
import time

import requests


def writer(spec, thread_no, results):
    """POST commands back to back on one keep-alive session until the stop
    time (or until ``per_thread`` commands succeeded)."""
    session = requests.Session()
    url = spec["url"] + "/api/commands"
    # Open the keep-alive connection before the clock starts.
    try:
        session.get(spec["url"] + "/api/status", timeout=5)
    except requests.RequestException:
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
        try:
            r = session.post(url, json={"command": f"{prefix}{n}"}, timeout=(2, 30))
            code = r.status_code
        except requests.RequestException as exc:
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
