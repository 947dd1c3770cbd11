"""What a client-facing call on the runtime can fail with."""


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
