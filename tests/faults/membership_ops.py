"""Membership changes as fault operations: remove a voter, remove the leader,
add a removed server back, each issued through the API of a random live
server (followers forward), often while another fault holds (a kill, a
pause, a partition). Registered in nemesis.REGISTRY when nemesis is imported.

Policy: a change is only issued while it leaves at least MIN_VOTERS voters
(so these operations need a pool of at least MIN_VOTERS + 1 servers); a
step that finds nothing to do (no removed server to add, voters already at
the minimum, no leader known) is noted and skipped. Which server is acted
on is chosen when the step runs, from the configuration the leader of the
moment reports.

A removed server is left running on its data directory (dissertation
§4.2.3: it must not disrupt the others) and is added back with that same
directory: its old log is fine, the leader backtracks it like any lagging
follower's, and keeping it keeps the server's term and vote, so no term of
its goes down and it can never vote twice in a term. A fresh directory
would forget both.

Every request's outcome is legitimate under faults (200, 409 conflict, 422
catchup_failed, 503, 504, a lost connection); each is recorded in the
history ("membership" notes) and counted in the run's statistics.
"""

from __future__ import annotations

import threading

from .nemesis import REGISTRY, Active, Nemesis, register

MIN_VOTERS = 3
# The fault held while the change is issued (None: the change alone).
DURING = (None, None, "kill", "pause", "isolate", "split", "one_way")
# How long after the request is sent the fault starts: a removal commits
# in milliseconds, an add catches up for longer, so both in-flight and
# just-finished changes get hit.
AFTER_S = (0.0, 0.02, 0.1, 0.3, 1.0)
JOIN_S = 60.0  # longest wait for an answer at heal (the server's own bound is lower)


class _MembershipChange(Nemesis):
    min_size = MIN_VOTERS + 1
    hold_s = (1.0, 4.0)
    kind = ""  # "add" or "remove"

    def plan(self, rng, size):
        during = rng.choice(DURING)
        params = {"during": during}
        if during is not None:
            params[during] = REGISTRY[during].plan(rng, size)
            params["after_s"] = rng.choice(AFTER_S)
        params.update(self._plan_target(rng, size))
        return params

    def _plan_target(self, rng, size) -> dict:
        return {}

    def _choose(self, bed, params, config) -> tuple[int | None, str]:
        """The server to act on, or None and why not."""
        raise NotImplementedError

    def start(self, bed, params):
        config = bed.configuration()
        if config is None:
            target, why = None, "no leader known"
        else:
            target, why = self._choose(bed, params, config)
        if target is None:
            bed.membership_outcome(self.kind, None, None, "skipped", why)
            return Active(f"{self.name}: skipped ({why})", lambda: None)
        # Any running server but the one being added (a non-member knows
        # no leader to forward to: always 503).
        live = [i for i in bed.live() if self.kind != "add" or i != target]
        live = live or list(range(bed.size))
        via = live[bed.rng.randrange(len(live))]
        thread = threading.Thread(
            target=bed.change_membership,
            args=(self.kind, target, via),
            name="nemesis-membership",
            daemon=True,
        )
        thread.start()
        fault = None
        if params.get("during") is not None:
            thread.join(params.get("after_s", 0.0))
            fault = self._start_fault(bed, params)

        def heal():
            try:
                if fault is not None:
                    fault.heal()
            finally:
                thread.join(JOIN_S)
                if thread.is_alive():
                    bed.note(f"{self.kind} {target}: no answer after {JOIN_S} s")

        during = f" during {fault.description}" if fault is not None else ""
        return Active(f"{self.kind} server {target} via {via}{during}", heal)

    def _start_fault(self, bed, params) -> Active | None:
        during = params.get("during")
        if during is None:
            return None
        sub = params[during]
        if REGISTRY[during].requires - bed.capabilities:
            # No namespaces (a loopback bed): pause a server instead.
            during, sub = "pause", {"target": sub.get("target", "leader")}
        return REGISTRY[during].start(bed, sub)


def _voters(config: dict[int, bool]) -> list[int]:
    return sorted(i for i, voter in config.items() if voter)


@register
class RemoveServer(_MembershipChange):
    """DELETE /api/servers/<address> of a voter (the planned one if it is a
    voter, else one chosen at random)."""

    name = "remove_server"
    kind = "remove"
    weight = 1.2

    def _plan_target(self, rng, size):
        return {"target": rng.randrange(size)}

    def _choose(self, bed, params, config):
        voters = _voters(config)
        if len(voters) <= MIN_VOTERS:
            return None, f"{len(voters)} voters: at the minimum"
        if params["target"] in voters:
            return params["target"], ""
        return voters[bed.rng.randrange(len(voters))], ""


@register
class RemoveLeader(_MembershipChange):
    """Remove the leader of the moment (it hands leadership over first)."""

    name = "remove_leader"
    kind = "remove"
    weight = 0.8

    def _choose(self, bed, params, config):
        voters = _voters(config)
        if len(voters) <= MIN_VOTERS:
            return None, f"{len(voters)} voters: at the minimum"
        leader = bed.resolve("leader")
        if leader not in voters:
            return None, f"the leader {leader} is not a voter"
        return leader, ""


@register
class AddServer(_MembershipChange):
    """POST /api/servers with a server of the pool that is not a voter (a
    removed one, or a learner an interrupted add left)."""

    name = "add_server"
    kind = "add"
    weight = 2.0

    def _choose(self, bed, params, config):
        voters = _voters(config)
        absent = [i for i in range(bed.size) if i not in voters]
        if not absent:
            return None, "every server is a voter"
        return absent[bed.rng.randrange(len(absent))], ""


# The faults a change may be issued under (network_ops registers first).
assert all(d is None or d in REGISTRY for d in DURING), DURING
