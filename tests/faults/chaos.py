"""The long fault run (``make chaos``): rounds of random schedules, each on a
fresh cluster, until the time is up; a summary at the end.

    .venv/bin/python -m tests.faults.chaos --minutes 20 [--seed S] [--nodes 3,5]

Round i uses seed S + i; a failed round prints the command that replays it
alone. Servers run in network namespaces when root (else on loopback,
with process faults only). By default rounds 2-3, 6-7, ... put each
server's data directory on a lazyfs mount (power cuts and disk errors join
the schedule) when FUSE is available. Exits 1 if any round failed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from . import disks, netns, runner

SUMMED = (
    "operations", "ok", "failed", "unknown", "unknown_committed", "faults",
    "retries", "retries_ok",
)  # fmt: skip
SNAPSHOTS_SUMMED = ("taken", "sent", "restored")
POWER_SUMMED = (
    "disk_cuts", "unsynced_pages_dropped", "cuts_that_dropped_pages",
    "truncations_dropped", "new_files_removed",
)  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=20.0,
        help="total time to keep starting rounds (default 20)",
    )
    parser.add_argument(
        "--round-minutes",
        type=float,
        default=4.0,
        help="each round's schedule length (default 4)",
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=None,
        help="each round's schedule length in seconds (instead of minutes)",
    )
    parser.add_argument(
        "--cover",
        action="store_true",
        help="every operation once before the random ones",
    )
    parser.add_argument(
        "--hold-scale",
        type=float,
        default=1.0,
        help="multiply every fault's hold time (default 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="stop after this many rounds (default: when the time is up)",
    )
    parser.add_argument("--seed", type=int, default=None, help="first round's seed")
    parser.add_argument(
        "--nodes",
        default="3,5",
        help="cluster sizes, taken in turn by the rounds (default 3,5)",
    )
    parser.add_argument(
        "--clients", type=int, default=5, help="concurrent clients (default 5)"
    )
    parser.add_argument(
        "--nemeses",
        default=None,
        help="only these operations, comma-separated (default: all that apply)",
    )
    parser.add_argument(
        "--first",
        default=None,
        help="operations every round starts with, in order, comma-separated",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the servers, e.g. RAFT_TICK_MS=20 or "
        "RAFT_SNAPSHOT_ENTRIES=10000 (repeatable; over runner.DEFAULT_ENV: "
        + " ".join(f"{k}={v}" for k, v in sorted(runner.DEFAULT_ENV.items()))
        + ")",
    )
    parser.add_argument(
        "--loopback",
        action="store_true",
        help="no namespaces: kills and pauses on 127.0.0.1 only",
    )
    parser.add_argument(
        "--disks",
        choices=("plain", "lazyfs", "alternate"),
        default="alternate",
        help="data directories on plain disk, on lazyfs mounts (power cuts), "
        "or two rounds of each in turn (default)",
    )
    parser.add_argument(
        "--fsync",
        choices=("honest", "lie"),
        default="honest",
        help="lazyfs: 'lie' ignores fsync, to show the checker finds lost writes",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=0.0,
        help="clients run alone this long before the first fault (default 0)",
    )
    parser.add_argument(
        "--kv-clients",
        type=int,
        default=3,
        help="key-value clients (default 3; 0: none)",
    )
    parser.add_argument(
        "--kv-keys", type=int, default=3, help="hot keys they share (default 3)"
    )
    parser.add_argument(
        "--kv-max-steps",
        type=int,
        default=runner.DEFAULT_MAX_STEPS,
        help="each key's linearizability search gives up ('unknown', a note) "
        "after this many steps",
    )
    parser.add_argument(
        "--kv-read-as",
        choices=("leader", "stale"),
        default=None,
        help="send every key-value read at this level but record it as asked: "
        "a broken read path, to show the checker catches it",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to keep each round's files (default /tmp/raft-fault-runs/chaos-<time>)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(n) for n in args.nodes.split(",")]
    seed = (
        args.seed
        if args.seed is not None
        else random.SystemRandom().randrange(1, 2**31)
    )
    use_netns = not args.loopback
    if use_netns:
        reason = netns.unavailable_reason()
        if reason:
            print(f"namespaces unavailable ({reason}): loopback rounds only")
            use_netns = False
        else:
            removed = netns.cleanup_leftovers()
            if removed:
                print(f"removed leftovers of earlier runs: {removed}")
    use_lazyfs = args.disks != "plain"
    if use_lazyfs:
        reason = disks.unavailable_reason()
        if reason:
            print(f"lazyfs unavailable ({reason}): no power cuts")
            use_lazyfs = False
        else:
            removed = disks.cleanup_leftovers()
            if removed:
                print(f"unmounted leftovers of earlier runs: {removed}")
    out = args.out or runner.FINDINGS_DIR / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(item.split("=", 1) for item in args.env)
    server_env = {**runner.DEFAULT_ENV, **env}
    print(
        f"chaos: seed {seed}, {args.minutes:g} min, rounds of {args.round_minutes:g} min, "
        f"sizes {sizes}, netns={use_netns}, files in {out}; servers' env: "
        + " ".join(f"{k}={v}" for k, v in sorted(server_env.items())),
        flush=True,
    )
    started = time.monotonic()
    end = started + args.minutes * 60
    rounds = []
    number = 0
    while (args.rounds is None and time.monotonic() < end) or (
        args.rounds is not None and number < args.rounds
    ):
        size = sizes[number % len(sizes)]
        lazy = use_lazyfs and (args.disks == "lazyfs" or (number // 2) % 2 == 1)
        config = runner.RunConfig(
            seed=seed + number,
            size=size,
            netns=use_netns,
            duration_s=args.round_seconds or args.round_minutes * 60,
            clients=args.clients,
            cover=args.cover,
            hold_scale=args.hold_scale,
            nemeses=args.nemeses.split(",") if args.nemeses else None,
            first=args.first.split(",") if args.first else None,
            env=env,
            disks="lazyfs" if lazy else "plain",
            fsync=args.fsync,
            warmup_s=args.warmup_s,
            kv_clients=args.kv_clients,
            kv_keys=args.kv_keys,
            kv_max_steps=args.kv_max_steps,
            kv_read_as=args.kv_read_as,
        )
        try:
            result = runner.run(
                config,
                out / f"round-{number}-seed-{config.seed}",
                log=lambda text: print(text, flush=True),
            )
        except Exception as exc:  # noqa: BLE001 - one broken round, reported
            print(f"round {number} (seed {config.seed}) crashed: {exc!r}", flush=True)
            rounds.append(
                {
                    "round": number,
                    "seed": config.seed,
                    "size": size,
                    "ok": False,
                    "error": repr(exc),
                    "replay": config.replay_hint(),
                }
            )
            number += 1
            if sum(1 for r in rounds[-3:] if r.get("error")) == 3:
                print("three rounds in a row crashed: stopping", flush=True)
                break
            continue
        print(result.report(), flush=True)
        rounds.append(
            {
                "round": number,
                "seed": config.seed,
                "size": size,
                "ok": result.ok,
                "stats": result.stats,
                "recoveries": runner.recovery_times(result.history),
                "violations": [str(v) for v in result.violations],
                "liveness_error": result.liveness_error,
                "replay": config.replay_hint(),
                "artifacts": str(result.artifacts),
            }
        )
        number += 1
    summary = summarize(rounds, seed, time.monotonic() - started, use_netns)
    summary["server_env"] = server_env
    (out / "summary.json").write_text(
        json.dumps({"summary": summary, "rounds": rounds}, indent=1)
    )
    print("\n" + format_summary(summary, rounds))
    return 0 if summary["failed_rounds"] == 0 else 1


def summarize(rounds: list[dict], seed: int, elapsed_s: float, use_netns: bool) -> dict:
    totals = {key: 0 for key in SUMMED}
    by_op: dict[str, int] = {}
    membership: dict[str, dict[str, int]] = {}  # kind -> outcome -> count
    power = {key: 0 for key in POWER_SUMMED}
    snapshots = {key: 0 for key in SNAPSHOTS_SUMMED}
    disk_errors: dict[str, dict[str, int]] = {}  # failing -> exit code -> count
    recoveries, settles = [], []
    unrecovered = 0
    for r in rounds:
        stats = r.get("stats") or {}
        for key in SUMMED:
            totals[key] += stats.get(key) or 0
        for key in POWER_SUMMED:
            power[key] += (stats.get("power") or {}).get(key) or 0
        for key in SNAPSHOTS_SUMMED:
            snapshots[key] += (stats.get("snapshots") or {}).get(key) or 0
        for outcome in (stats.get("power") or {}).get("disk_errors") or []:
            codes = disk_errors.setdefault(outcome["failing"], {})
            code = str(outcome["exit_code"])
            codes[code] = codes.get(code, 0) + 1
        for op, count in (stats.get("faults_by_op") or {}).items():
            if op != "all":
                by_op[op] = by_op.get(op, 0) + count
        for kind, outcomes in (stats.get("membership") or {}).items():
            mine = membership.setdefault(kind, {})
            for outcome, count in outcomes.items():
                mine[outcome] = mine.get(outcome, 0) + count
        for rec in r.get("recoveries") or []:
            if rec["recovery_s"] is None:
                unrecovered += 1
            else:
                recoveries.append(rec["recovery_s"])
        if stats.get("settle_s") is not None:
            settles.append(stats["settle_s"])
    recoveries.sort()
    by_kind: dict[str, list[float]] = {}
    for r in rounds:
        for rec in r.get("recoveries") or []:
            if rec["recovery_s"] is not None:
                by_kind.setdefault(rec["fault"], []).append(rec["recovery_s"])
    recovery_by_op = {
        op: {"heals": len(v), "median_s": sorted(v)[len(v) // 2], "max_s": max(v)}
        for op, v in sorted(by_kind.items())
    }

    def percentile(p):
        return (
            recoveries[min(len(recoveries) - 1, int(p * len(recoveries)))]
            if recoveries
            else None
        )

    return {
        "seed": seed,
        "minutes": round(elapsed_s / 60, 1),
        "netns": use_netns,
        "rounds": len(rounds),
        "failed_rounds": sum(not r["ok"] for r in rounds),
        **totals,
        "faults_by_op": by_op,
        "membership": membership,
        "lazyfs_rounds": sum(1 for r in rounds if (r.get("stats") or {}).get("power")),
        "power": power,
        # Snapshot event lines: taken, sent by a leader, restored from one.
        "snapshots": snapshots,
        "disk_errors_exit_codes": disk_errors,
        "recovery_s_median": percentile(0.5),
        "recovery_s_p95": percentile(0.95),
        "recovery_s_max": recoveries[-1] if recoveries else None,
        "heals_without_recovery_before_next_fault": unrecovered,
        "recovery_by_op": recovery_by_op,
        "settle_s_max": max(settles) if settles else None,
    }


def format_summary(summary: dict, rounds: list[dict]) -> str:
    lines = ["chaos summary: " + json.dumps(summary, sort_keys=True)]
    for r in rounds:
        if not r["ok"]:
            lines.append(
                f"FAILED round {r['round']} seed {r['seed']}: replay with {r['replay']}"
            )
            for v in r.get("violations") or []:
                lines.append(f"  {v}")
            if r.get("liveness_error"):
                lines.append(f"  liveness: {r['liveness_error'].splitlines()[0]}")
            if r.get("error"):
                lines.append(f"  error: {r['error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
