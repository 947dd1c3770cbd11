"""NodeRuntime: the one thread that owns a RaftNode, and its public face.

INTERFACE STUB: the methods below are the contract the client API (nodes
app) codes against; the implementation lands in this module.
"""

from __future__ import annotations

from dataclasses import dataclass


class NotLeaderError(Exception):
    """This server is not the leader; ``leader_id`` is the known leader
    (full address) or None. Nothing was appended."""

    def __init__(self, leader_id: str | None, detail: str = ""):
        super().__init__(detail or f"not the leader; leader is {leader_id}")
        self.leader_id = leader_id


class CommandTimeout(Exception):
    """The outcome is unknown: the command may or may not commit."""


class CommandLost(Exception):
    """The command was appended but overwritten by another leader's entry:
    it is known not to have committed (safe to retry)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    voter: bool


@dataclass(frozen=True, slots=True)
class NodeStatus:
    id: str
    role: str  # leader, follower, candidate, learner, none
    term: int
    leader: str | None
    commit_index: int
    last_applied: int
    last_log_index: int
    servers: tuple[ServerInfo, ...]


def current_runtime():
    """The NodeRuntime serving in this process, or None."""
    from django.apps import apps

    return apps.get_app_config("consensus").runtime


class NodeRuntime:
    node_id: str  # full address host:port

    def submit_command(
        self,
        command: str,
        client_id: str | None = None,
        seq: int | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Propose a command and block until the leader applied it.

        Raises NotLeaderError (nothing appended), CommandTimeout (unknown
        outcome) or CommandLost (known not committed). A repeat of an
        applied (client_id, seq) returns the first answer.
        """
        raise NotImplementedError

    def status(self) -> NodeStatus:
        """A snapshot of this node's state; never blocks on the loop."""
        raise NotImplementedError
