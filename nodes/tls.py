"""This node's TLS files as its own HTTP clients use them: the forwarder,
the dashboard and the admin ask other nodes over HTTPS, verified by the CA,
and show this node's certificate."""

from django.conf import settings


def node_ca() -> str | None:
    """The cluster's CA when this node runs on TLS, else None (plain HTTP)."""
    return settings.RAFT_TLS_CA or None


def node_cert() -> tuple[str, str] | None:
    """This node's (certificate, key), shown to the nodes it calls."""
    if not settings.RAFT_TLS_CERT:
        return None
    return (settings.RAFT_TLS_CERT, settings.RAFT_TLS_KEY)
