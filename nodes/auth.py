"""Who calls the client API, and what they may do (issue 10; CONTRACT.md,
Security settings).

A client shows ``Authorization: Token <token>``; the token is looked up by
its digest among the cluster's users and tokens (consensus/access.py), which
every server holds alike. A follower that sends a write on to the leader
vouches for its caller instead (``X-Raft-Caller``), with its own peer
credentials: the leader keeps the caller's name for the record, and need
not have applied the caller's token yet.

With RAFT_AUTH_REQUIRED off (a loopback node without RAFT_AUTH=required)
the API stays open to anyone, as the local walkthrough needs; a token that
is given is still checked, and names who asked.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import BasePermission

from consensus import access
from consensus.access import PERMISSIONS
from consensus.tls import peer_certificate
from consensus.transport import SECRET_KEY, header_key
from raftsite import security

from .client import CALLER_HEADER, FORWARDED_HEADER

# Where the views read them (consensus.transport.header_key).
CALLER_KEY = header_key(CALLER_HEADER)
FORWARDED_KEY = header_key(FORWARDED_HEADER)

# The most a vouched caller's name may hold (CONFIG entries record it).
MAX_CALLER_NAME_CHARS = 300


@dataclass(frozen=True)
class ClientUser:
    """request.user of an API call: a token's user, or the caller a peer
    vouches for. ``name`` is what membership changes record as who asked."""

    name: str
    permissions: frozenset[str]
    # A first admin asked for from the node's own machine (TokensView).
    bootstrap: bool = False
    is_authenticated = True

    def may(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class Caller:
    """Who makes a client write, as leader_or_forward passes it on.

    None: nobody known (an open API called without a token)."""

    user: ClientUser | None = None
    # Whether another node already sent the request on to this one.
    forwarded: bool = False

    @property
    def name(self) -> str | None:
        return self.user.name if self.user else None

    def headers(self) -> dict[str, str]:
        """What a follower adds when it sends the write on: its vouching
        for the caller (JSON, ASCII only: header values are Latin-1)."""
        if self.user is None:
            return {}
        vouched = {
            "name": self.user.name,
            "permissions": sorted(self.user.permissions),
            "bootstrap": self.user.bootstrap,
        }
        return {CALLER_HEADER: json.dumps(vouched, separators=(",", ":"))}


# No one known: the caller of an open API without a token.
NOBODY = Caller()


def caller_of(request) -> Caller:
    return Caller(request.user, request.META.get(FORWARDED_KEY) == "1")


def site_caller(login: str) -> Caller:
    """An operator of this node's admin site: trusted as an administrator
    (the site has logins of its own)."""
    return Caller(ClientUser(f"{login} (admin site)", frozenset(PERMISSIONS)))


class ClusterTokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme (``Authorization: Token <token>``, its header
    checks and 401 answers) over the cluster's tokens, stored as digests."""

    def authenticate_credentials(self, key):
        credential = access.authenticate(key)
        if credential is None:
            raise AuthenticationFailed("Invalid or revoked token.")
        user = ClientUser(credential.username, credential.permissions)
        return (user, credential)


class VouchedCallerAuthentication(authentication.BaseAuthentication):
    """A write a follower forwarded on behalf of its caller
    (Caller.headers): believed only from a peer that proves it is one."""

    def authenticate(self, request):
        header = request.META.get(CALLER_KEY)
        if header is None:
            return None
        if not is_peer(request):
            raise AuthenticationFailed(
                f"{CALLER_HEADER} is only taken from a peer with the cluster's "
                "credentials."
            )
        try:
            return (vouched_user(header), None)
        except ValueError:
            raise AuthenticationFailed(f"Malformed {CALLER_HEADER} header.") from None

    def authenticate_header(self, request):
        return "Token"


def vouched_user(header: str) -> ClientUser:
    """The caller in a peer's X-Raft-Caller header (Caller.headers);
    ValueError if it is malformed."""
    try:
        vouched = json.loads(header)
        name = vouched["name"]
        given = vouched["permissions"]
        # A first admin's request holds none (TokensView).
        permissions = access.parse_permissions(given) if given else ()
        bootstrap = vouched.get("bootstrap", False)
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"malformed {CALLER_HEADER}") from None
    if not (
        isinstance(name, str)
        and 0 < len(name) <= MAX_CALLER_NAME_CHARS
        and isinstance(bootstrap, bool)
    ):
        raise ValueError(f"malformed {CALLER_HEADER}")
    return ClientUser(name, frozenset(permissions), bootstrap)


def is_peer(request) -> bool:
    """Whether the request comes from a server of the cluster: it shows the
    cluster secret, or with TLS a certificate from the cluster's CA; with
    neither configured (a loopback cluster), it comes from this machine,
    the only place its peers can be."""
    secret = settings.RAFT_CLUSTER_SECRET
    if secret:
        given = request.META.get(SECRET_KEY, "")
        return hmac.compare_digest(given.encode(), secret.encode())
    if settings.RAFT_TLS_CA:
        return peer_certificate(request.META) is not None
    return is_local(request)


def is_local(request) -> bool:
    """Whether the request came from this machine: a loopback address or
    one of its own (a node bound to one address is reached on it)."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        if ipaddress.ip_address(address).is_loopback:
            return True
    except ValueError:
        return False
    return address in _own_addresses() or f"[{address}]" in _own_addresses()


@cache
def _own_addresses() -> frozenset[str]:
    return frozenset(security.machine_names())


class HasPermission(BasePermission):
    """The view's ``required_permission`` (a name, or one per HTTP method;
    None: open), when RAFT_AUTH_REQUIRED is on. Without credentials DRF
    answers 401, with a user lacking the permission 403."""

    def has_permission(self, request, view):
        needed = required_permission(view, request.method)
        if needed is None or not settings.RAFT_AUTH_REQUIRED:
            return True
        user = request.user
        if user is None:
            raise NotAuthenticated(
                "This node needs a token: send Authorization: Token <token> "
                "(manage.py createtoken makes one)."
            )
        if not user.may(needed):
            self.message = (
                f"{user.name} lacks the {needed} permission for "
                f"{request.method} {request.path}."
            )
            return False
        return True


def required_permission(view, method: str) -> str | None:
    needed = getattr(view, "required_permission", None)
    if isinstance(needed, dict):
        return needed.get(method)
    return needed
