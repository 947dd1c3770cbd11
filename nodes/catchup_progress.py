"""What addserver prints while a new server catches up (dissertation
§4.2.1): the leader's snapshot transfer to it, then its log, read from the
leader's GET /api/servers and /api/status once a second on a thread of its
own. No Django imports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .client import ClientError
from .membership_client import MembershipClient
from .transfer_rate import TransferRate, rate_and_eta

POLL_S = 1.0
REQUEST_TIMEOUT_S = 2.0


def describe_progress(address: str, member: dict, leader_last_index: int) -> str:
    """One line on ``address``'s catch-up, from the leader's view of it."""
    sent, size = member.get("snapshot_bytes_sent"), member.get("snapshot_size")
    if isinstance(sent, int) and isinstance(size, int) and size > 0:
        return (
            f"catching up {address}: snapshot {sent / 1e6:.1f} of "
            f"{size / 1e6:.1f} MB ({100 * sent // size}%)"
        )
    match = member.get("match_index")
    return f"catching up {address}: log at index {match} of {leader_last_index}"


def with_rate(
    line: str,
    member: dict,
    leader_last_index: int,
    meters: dict[str, TransferRate],
    now: float,
) -> str:
    """``line`` (describe_progress's) with the rate and time left of the
    phase it is in, measured by ``meters`` (one per phase, kept between
    calls) from this sample at ``now``."""
    sent, size = member.get("snapshot_bytes_sent"), member.get("snapshot_size")
    if isinstance(sent, int) and isinstance(size, int) and size > 0:
        meter = meters.setdefault("snapshot", TransferRate())
        meter.add(now, sent, size)
        return line + rate_and_eta(meter, "MB", 1e6)
    match = member.get("match_index")
    if not isinstance(match, int) or not isinstance(leader_last_index, int):
        return line
    meter = meters.setdefault("log", TransferRate())
    meter.add(now, match, leader_last_index)
    return line + rate_and_eta(meter, "entries")


class CatchupWatcher:
    """Polls the cluster through ``server`` and calls ``show(line)`` each
    time the new server's progress changes, until stop()."""

    def __init__(
        self,
        server: str,
        address: str,
        show: Callable[[str], None],
        ca: str | None = None,
        token: str | None = None,
    ):
        self._server = server
        self._ca = ca
        self._token = token
        self._address = address
        self._show = show
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CatchupWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join(timeout=3 * REQUEST_TIMEOUT_S)

    def _run(self) -> None:
        shown = None
        meters: dict[str, TransferRate] = {}
        while not self._stopped.wait(POLL_S):
            polled = self._poll()
            if polled is None:
                continue
            line, member, last_index = polled
            # Every sample feeds the rate; a line is shown only when the
            # progress itself moved, not for a new rate of the same point.
            full = with_rate(line, member, last_index, meters, time.monotonic())
            if line != shown and not self._stopped.is_set():
                self._show(full)
                shown = line

    def _poll(self) -> tuple[str, dict, int] | None:
        try:
            with MembershipClient(
                self._server, REQUEST_TIMEOUT_S, ca=self._ca, token=self._token
            ) as client:
                leader = client.servers().get("leader")
            if not isinstance(leader, str):
                return None
            with MembershipClient(
                leader, REQUEST_TIMEOUT_S, ca=self._ca, token=self._token
            ) as client:
                servers = client.servers()
                status = client.status()
        except ClientError:
            return None  # the change itself reports what failed
        member = next(
            (s for s in servers["servers"] if s.get("id") == self._address), None
        )
        if member is None or member.get("voter") or member.get("match_index") is None:
            return None  # not a learner being caught up by this leader (yet)
        last_index = status.get("last_log_index")
        return describe_progress(self._address, member, last_index), member, last_index
