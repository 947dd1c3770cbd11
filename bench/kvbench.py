"""The key-value figures of issue 12: closed-loop puts against the leader,
and reads spread over every server at each consistency level, at 1 and 64
clients, in one run on one cluster (bench/closedloop.py's clients)."""

from __future__ import annotations

from bench.closedloop import measure_level

LEVELS = (1, 64)
# (label, load.py spec fields)
MODES = (
    ("put", {"mode": "kv_put"}),
    ("get linearizable", {"mode": "kv_get", "consistency": "linearizable"}),
    ("get stale", {"mode": "kv_get", "consistency": "stale"}),
)


def run_kv(cluster, args) -> list[dict]:
    urls = [node.base_url for node in cluster.nodes]
    rows = []
    print(f"kv: clients use {args.kv_client}", flush=True)
    for label, spec in MODES:
        for clients in LEVELS:
            print(f"kv: {label}, {clients} clients ...", flush=True)
            extra = dict(spec, client=args.kv_client)
            if spec["mode"] == "kv_get":
                extra["urls"] = urls  # every server answers reads
            row = measure_level(cluster, clients, args, **extra)
            rows.append({"op": label, "client": args.kv_client, **row})
    return rows


def report(rows: list[dict]) -> list[str]:
    client = rows[0].get("client", "requests") if rows else "requests"
    out = [
        "",
        "key-value: closed-loop puts to the leader, gets spread over all servers"
        f" (clients: {client})",
    ]
    out.append(
        f"{'op':>18} {'clients':>8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors"
    )
    for r in rows:
        out.append(
            f"{r['op']:>18} {r['clients']:>8} {r['commands_per_s']:>9.1f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {r['errors'] or '-'}"
        )
    return out


def targets(rows: list[dict], check) -> None:
    """Issue 12's ratios, measured in the same run."""
    by = {(r["op"], r["clients"]): r for r in rows}
    put64 = by.get(("put", 64), {}).get("commands_per_s")
    lin64 = by.get(("get linearizable", 64), {}).get("commands_per_s")
    stale64 = by.get(("get stale", 64), {}).get("commands_per_s")
    if put64:
        check("linearizable reads / puts at 64 clients", lin64 and lin64 / put64,
              ">= 2", lambda v: v >= 2)  # fmt: skip
        check("stale reads / puts at 64 clients", stale64 and stale64 / put64,
              ">= 5", lambda v: v >= 5)  # fmt: skip
    put1 = by.get(("put", 1), {}).get("p50_ms")
    lin1 = by.get(("get linearizable", 1), {}).get("p50_ms")
    if put1:
        check("1-client p50: linearizable read / put", lin1 and lin1 / put1,
              "<= 1", lambda v: v <= 1)  # fmt: skip
