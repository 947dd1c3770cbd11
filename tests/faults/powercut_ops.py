"""Power cuts and failing disks (issue 9), for beds whose servers keep their
data directories on lazyfs mounts (disks.py, lazyfs.py): the POWER
capability.

A power cut SIGKILLs the servers and loses everything their file systems
had not fsynced, then the servers restart on what is left. A disk error
makes every write (or fsync) of one server's file system fail for the hold,
as a full or dying disk would; the server should stop rather than
acknowledge what it did not persist. It is healed by a power cycle of that
server (an operator's reboot), which also drops the pages a failed fsync
left readable but unwritten.
"""

from __future__ import annotations

from .nemesis import Active, Nemesis, _target, register

POWER = "power"  # data directories on lazyfs mounts (power cuts, disk errors)


@register
class PowerCut(Nemesis):
    """Cut one server's power (often the leader's); it restarts on what its
    disk had fsynced."""

    name = "power_cut"
    requires = frozenset({POWER})
    weight = 1.5
    hold_s = (0.2, 3.0)

    def plan(self, rng, size):
        return {"target": _target(rng, size)}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        lost = bed.power_cut([i])
        return Active(f"power cut {i}: {lost}", lambda: bed.restart(i))


@register
class PowerCutMajority(Nemesis):
    """Cut a majority's power at once: what they acknowledged is on no
    other disk than theirs."""

    name = "power_cut_majority"
    requires = frozenset({POWER})
    weight = 1.0
    min_size = 2
    hold_s = (0.2, 3.0)

    def plan(self, rng, size):
        return {"nodes": sorted(rng.sample(range(size), size // 2 + 1))}

    def start(self, bed, params):
        nodes = params["nodes"]
        lost = bed.power_cut(nodes)

        def heal():
            for i in nodes:
                bed.restart(i)

        return Active(f"power cut {nodes}: {lost}", heal)


@register
class PowerCutAll(Nemesis):
    """Cut every server's power at once (the building goes dark)."""

    name = "power_cut_all"
    requires = frozenset({POWER})
    weight = 0.7
    hold_s = (0.2, 2.0)

    def start(self, bed, params):
        nodes = list(range(bed.size))
        lost = bed.power_cut(nodes)

        def heal():
            for i in nodes:
                bed.restart(i)

        return Active(f"power cut of every server: {lost}", heal)


# (operation, errno name): a full disk refuses writes; a dying one fails
# writes or fsyncs.
DISK_ERRORS = [("write", "ENOSPC"), ("write", "EIO"), ("fsync", "EIO")]


@register
class DiskError(Nemesis):
    """One server's disk fails every write (ENOSPC or EIO) or fsync (EIO)
    for the hold; then a power cycle of that server heals it."""

    name = "disk_error"
    requires = frozenset({POWER})
    weight = 0.7
    hold_s = (0.5, 3.0)

    def plan(self, rng, size):
        op, code = rng.choice(DISK_ERRORS)
        return {"target": _target(rng, size), "op": op, "errno": code}

    def start(self, bed, params):
        i = bed.resolve(params["target"])
        bed.disk_fail(i, params["op"], params["errno"])
        return Active(
            f"disk of {i}: every {params['op']} fails with {params['errno']}",
            lambda: bed.disk_heal(i),
        )


@register
class PowerCutUnsyncedCheckpoint(Nemesis):
    """Aimed at the WAL hole of issue 9: wait (at most ``wait_s``) until a
    server's main database file holds pages a checkpoint wrote without an
    fsync (only a commit run with ``PRAGMA synchronous=OFF`` leaves them
    there for long), then cut that server's power, or every server's. With
    the WAL reset since, what those pages held is on no disk any more. When
    no such moment comes, the leader's power is cut instead."""

    name = "power_cut_unsynced_checkpoint"
    requires = frozenset({POWER})
    weight = 0.5
    hold_s = (0.2, 2.0)

    def plan(self, rng, size):
        return {"scope": rng.choice(["one", "all"]), "wait_s": 5.0}

    def start(self, bed, params):
        found = bed.wait_unsynced("db.sqlite3", params["wait_s"])
        if found is None:
            nodes = [bed.resolve("leader")]
            why = "no unsynced checkpoint seen: the leader"
        else:
            i, pages = found
            nodes = list(range(bed.size)) if params["scope"] == "all" else [i]
            why = f"{pages} unsynced db.sqlite3 pages on {i}"
        lost = bed.power_cut(nodes)

        def heal():
            for i in nodes:
                bed.restart(i)

        return Active(f"power cut {nodes} ({why}): {lost}", heal)
