"""What a client-facing call on the runtime can fail with."""

from .core.api import NotLeader

__all__ = ["CommandLost", "CommandTimeout", "NotLeader"]


class CommandTimeout(Exception):
    """The outcome is unknown: the command may or may not commit."""


class CommandLost(Exception):
    """The command was appended but overwritten by another leader's entry:
    it is known not to have committed (safe to retry)."""
