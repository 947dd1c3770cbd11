"""Closed-loop writers for the benchmark: client processes (bench/load.py)
that POST /api/commands back to back, and one client level's figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

LOAD = Path(__file__).resolve().parent / "load.py"


def spread(clients: int, threads_per_proc: int) -> list[int]:
    """Split ``clients`` threads over as few processes as allow at most
    ``threads_per_proc`` each, as evenly as possible."""
    procs = max(1, math.ceil(clients / threads_per_proc))
    base, extra = divmod(clients, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


def run_clients(
    url: str,
    clients: int,
    threads_per_proc: int,
    prefix: str,
    seconds: float | None = None,
    total: int | None = None,
    **extra,
) -> tuple[list, dict, float]:
    """Closed-loop writers in client processes; all start at one instant.

    Runs for ``seconds`` or until ``total`` commands succeeded. Returns
    (samples as (start, latency_s), error counts, start time).
    """
    # Interpreter and requests start-up of every client process fits in
    # this lead time, so all threads start writing together.
    start_at = time.time() + 1.0 + 0.15 * math.ceil(clients / threads_per_proc)
    per_proc = spread(clients, threads_per_proc)
    procs = []
    for i, threads in enumerate(per_proc):
        spec = {
            "url": url,
            "threads": threads,
            "start_at": start_at,
            "prefix": f"{prefix}-{i}",
            **extra,
        }
        if seconds is not None:
            spec["stop_at"] = start_at + seconds
        if total is not None:
            spec["per_thread"] = math.ceil(total / clients)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(LOAD), json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    samples, errors = [], {}
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"client process exited with {proc.returncode}")
        result = json.loads(out)
        samples.extend(result["samples"])
        for code, count in result["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return samples, errors, start_at


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure_level(cluster, clients, args, **extra) -> dict:
    """One closed-loop level against the leader (``extra``: load.py's spec
    fields, such as a key-value ``mode``)."""
    leader = cluster.leader(timeout=15)
    # requests (the default) or httpclient (bench/load.py).
    extra.setdefault("client", getattr(args, "client", "requests"))
    samples, errors, start_at = run_clients(
        leader.base_url,
        clients,
        args.threads_per_proc,
        prefix=f"c{clients}",
        seconds=args.warmup + args.duration,
        **extra,
    )
    # Only the steady window after the warm-up counts.
    window_start = start_at + args.warmup
    window_end = window_start + args.duration
    done = [(s, lat) for s, lat in samples if window_start <= s + lat <= window_end]
    latencies = sorted(
        lat * 1000 for s, lat in samples if window_start <= s < window_end
    )
    # A batch request commits that many commands.
    per_request = extra.get("batch", 1) if extra.get("mode") == "batch" else 1
    return {
        "clients": clients,
        "client_procs": len(spread(clients, args.threads_per_proc)),
        "requests_per_s": len(done) / args.duration,
        "commands_per_s": len(done) * per_request / args.duration,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "committed": len(done),
        "errors": errors,
    }
