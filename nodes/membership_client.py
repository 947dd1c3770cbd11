"""Client side of addserver, removeserver and transferleader: the membership
API (CONTRACT.md) for the management commands. No Django imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.addresses import InvalidAddress, normalise_address

from .client import (
    RETRY_PAUSE_S,
    Answer,
    ClientError,
    ConnectionLost,
    RaftClient,
    ServerUnreachable,
    parse_retry_after,
)

# Catch-up may take up to 30 s (RAFT_CATCHUP_TIMEOUT_S), then two commits.
ADD_TIMEOUT_S = 60.0
REMOVE_TIMEOUT_S = 30.0
TRANSFER_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Change:
    """A membership change the cluster committed, as told by ``server``."""

    server: str
    address: str
    index: int
    term: int
    changed: bool
    leader: str | None
    forwarded: bool


@dataclass(frozen=True)
class Transfer:
    server: str
    leader: str
    forwarded: bool


def full_address(text: str) -> str:
    try:
        return normalise_address(text)
    except InvalidAddress as exc:
        raise ClientError(str(exc)) from None


class MembershipClient(RaftClient):
    """RaftClient with the membership calls; each retries while the
    cluster answers 503 no_leader (nothing changed), until its timeout."""

    def add_server(self, address: str) -> Change:
        address = full_address(address)
        body = self._write(lambda remaining: self._send_add(address, remaining))
        return self._change(body, address)

    def remove_server(self, address: str) -> Change:
        address = full_address(address)
        body = self._write(lambda remaining: self._send_remove(address, remaining))
        return self._change(body, address)

    def transfer_leader(self, to: str | None) -> Transfer:
        to = full_address(to) if to is not None else None
        body = self._write(lambda remaining: self._send_transfer(to, remaining))
        leader = body.get("leader")
        if not isinstance(leader, str):
            raise ClientError(f"unexpected answer from {self.server}: no leader named")
        return Transfer(self.server, leader, body.get("forwarded") is True)

    def create_token(self, username: str, permissions: list[str]) -> dict:
        """POST /api/tokens: the leader's answer, the new token in it."""
        body = {"username": username, "permissions": permissions}
        answer = self._write(
            lambda remaining: self._request("POST", "/api/tokens", body, remaining)
        )
        if not isinstance(answer.get("token"), str):
            raise ClientError(f"unexpected answer from {self.server}: no token")
        return answer

    def servers(self) -> dict:
        """GET /api/servers as a dict (the contract's fields and more)."""
        body = self._write(self._get_servers, read=True)
        if not isinstance(body.get("servers"), list):
            raise ClientError(f"unexpected answer from {self.server}: no servers")
        return body

    # One attempt each; they raise ServerUnreachable or ConnectionLost if no
    # answer came.

    def _send_add(self, address, remaining_s) -> Answer:
        return self._request("POST", "/api/servers", {"address": address}, remaining_s)

    def _send_remove(self, address, remaining_s) -> Answer:
        return self._request("DELETE", f"/api/servers/{address}", None, remaining_s)

    def _send_transfer(self, to, remaining_s) -> Answer:
        return self._request("POST", "/api/leader", {"to": to}, remaining_s)

    def _get_servers(self, remaining_s) -> Answer:
        return self._request("GET", "/api/servers", None, remaining_s)

    def _write(self, send, read=False) -> dict:
        """Call ``send(remaining_s)`` until it gives a 200, retrying while a
        write (never a read) is answered 503 no_leader."""
        retry = not read
        deadline = self._clock() + self.timeout_s
        while (remaining := deadline - self._clock()) > 0:
            try:
                answer = send(remaining)
            except ServerUnreachable as exc:
                raise ClientError(f"cannot reach {self.server}: {exc.reason}") from None
            except ConnectionLost as exc:
                if read:
                    raise ClientError(
                        f"no answer from {self.server}: {exc.reason}"
                    ) from None
                raise ClientError(
                    f"outcome unknown: no answer from {self.server} ({exc.reason}); "
                    "the change may or may not take effect"
                ) from None
            error = answer.body.get("error") if answer.body else None
            if answer.status == 200 and answer.body is not None:
                return answer.body
            if answer.status == 503 and error == "no_leader" and retry:
                delay = max(RETRY_PAUSE_S, parse_retry_after(answer.retry_after))
                self._pause(delay, deadline)
            elif answer.status == 504 or (
                answer.status >= 500 and error != "no_leader"
            ):
                raise ClientError(
                    f"outcome unknown: {self._describe(answer)}; "
                    "the change may or may not take effect"
                )
            else:
                raise ClientError(self._describe(answer))
        raise ClientError(f"no leader known (tried for {self.timeout_s:g} s)")

    def _change(self, body: dict, address: str) -> Change:
        index, term = body.get("index"), body.get("term")
        if not (isinstance(index, int) and isinstance(term, int)):
            raise ClientError(
                f"outcome unknown: unexpected answer from {self.server} "
                "(HTTP 200 without index and term)"
            )
        return Change(
            server=self.server,
            address=address,
            index=index,
            term=term,
            changed=body.get("changed") is not False,
            leader=body.get("leader"),
            forwarded=body.get("forwarded") is True,
        )


def _answered_by(server: str, leader: str | None, forwarded: bool) -> str:
    if forwarded:
        return f"by {server}, forwarded to leader {leader}"
    return f"by {server}, the leader (not forwarded)"


def describe_change(change: Change, verb: str) -> str:
    """One line: what changed, the configuration's index, who answered."""
    who = _answered_by(change.server, change.leader, change.forwarded)
    if not change.changed:
        return (
            f"Nothing to do: {change.address} is already a voter "
            f"(configuration at index {change.index}, term {change.term}); "
            f"answered {who}"
        )
    return (
        f"{verb} {change.address}: configuration committed at index "
        f"{change.index} (term {change.term}) {who}"
    )


def describe_transfer(transfer: Transfer) -> str:
    text = f"Leadership is now with {transfer.leader}; asked {transfer.server}"
    if transfer.forwarded:
        return f"{text}, which forwarded the request to the leader"
    return f"{text}, the leader then (not forwarded)"
