"""Users and tokens of the client API, replicated through the log (issue 10).

Credentials are cluster-wide, as etcd's users and roles are: a user or token
is created once, by an ACCESS entry, and every server that applies the entry
(or restores a snapshot after it, a server added later included) knows it.
An ACCESS entry's command is one operation as JSON:

- ``create_token``: the user (created if new) gets ``permissions``, and a
  token whose SHA-256 ``digest`` and ``token_id`` the entry carries. The
  token itself is never in the log, on disk or in a snapshot: the leader
  that minted it hands it to its caller once. With ``bootstrap`` it applies
  only while no user has ``admin``: two first admins asked for at once
  cannot both be made.
- ``set_permissions``, ``revoke_token``, ``delete_user``.

Everything is decided in apply, from the entry and the tables alone, so
every server reaches the same tables. An operation that cannot apply (an
unknown token, a first admin when there is one) changes nothing and answers
Refused. The entry's ``client_id`` names who asked, as on CONFIG entries.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass

from .core.messages import Entry
from .models import ClusterToken, ClusterUser
from .refused import Refused

# In the order they are stored and shown. read: the log (and key-value
# reads); write: commands (and key-value writes); admin: servers, leadership
# and users (CONTRACT.md, Security settings).
PERMISSIONS = ("read", "write", "admin")
ADMIN = "admin"

USERNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,150}")
TOKEN_ID = re.compile(r"[0-9a-f]{12}")
DIGEST = re.compile(r"[0-9a-f]{64}")
# raft_<token_id>_<43 characters of secret>: the id makes a token easy to
# find in a list and to revoke without ever showing it again.
TOKEN = re.compile(r"raft_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
TOKEN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str  # shown once to the caller, never stored
    token_id: str
    digest: str


def token_digest(token: str) -> str:
    """SHA-256 of a token: enough for 256 random bits (no password to
    stretch), and what a lookup compares, never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mint_token() -> MintedToken:
    token_id = secrets.token_hex(6)
    token = f"raft_{token_id}_{secrets.token_urlsafe(TOKEN_SECRET_BYTES)}"
    return MintedToken(token, token_id, token_digest(token))


def parse_permissions(value) -> tuple[str, ...]:
    """Permissions from "read,write" or a list, in PERMISSIONS order;
    ValueError with a line for a person if any is unknown or none given."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, str) for item in items
    ):
        raise ValueError("permissions must be a list of names")
    names = {item.strip() for item in items if item.strip()}
    unknown = sorted(names - set(PERMISSIONS))
    if unknown:
        raise ValueError(
            f"unknown permission {', '.join(unknown)}: "
            f"choose from {', '.join(PERMISSIONS)}"
        )
    if not names:
        raise ValueError(f"give at least one permission of {', '.join(PERMISSIONS)}")
    return tuple(p for p in PERMISSIONS if p in names)


def check_username(value) -> str:
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise ValueError("a username is 1 to 150 letters, digits and _ . @ + - (ASCII)")
    return value


# --- operations, as the leader proposes them ----------------------------------


def create_token_op(
    username: str,
    permissions: tuple[str, ...],
    minted: MintedToken,
    *,
    bootstrap: bool = False,
) -> str:
    return _op(
        "create_token",
        username=username,
        permissions=list(permissions),
        token_id=minted.token_id,
        digest=minted.digest,
        bootstrap=bootstrap,
    )


def set_permissions_op(username: str, permissions: tuple[str, ...]) -> str:
    return _op("set_permissions", username=username, permissions=list(permissions))


def revoke_token_op(token_id: str) -> str:
    return _op("revoke_token", token_id=token_id)


def delete_user_op(username: str) -> str:
    return _op("delete_user", username=username)


def _op(name: str, **fields) -> str:
    return json.dumps({"op": name, **fields}, separators=(",", ":"))


# --- apply (the state machine's loop thread, inside its transaction) ----------


def apply(entry: Entry) -> Refused | None:
    """Apply one ACCESS entry to the user and token tables (the caller's
    transaction); a Refused when it changes nothing. Malformed operations
    are refused, never raised: a leader of another version may write them,
    and every server must still apply the same log."""
    try:
        op = json.loads(entry.command)
        if not isinstance(op, dict):
            raise ValueError("not a JSON object")
        handler = _HANDLERS.get(op.get("op"))
        if handler is None:
            raise ValueError(f"unknown operation {op.get('op')!r}")
        return handler(op, entry)
    except (ValueError, TypeError) as exc:
        return Refused("conflict", f"malformed access operation: {exc}")


def _create_token(op: dict, entry: Entry) -> Refused | None:
    username = check_username(op.get("username"))
    permissions = parse_permissions(op.get("permissions"))
    token_id, digest = op.get("token_id"), op.get("digest")
    if not (isinstance(token_id, str) and TOKEN_ID.fullmatch(token_id)):
        raise ValueError("token_id must be 12 hex digits")
    if not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
        raise ValueError("digest must be 64 hex digits")
    if op.get("bootstrap") is True and has_admin():
        return Refused(
            "conflict",
            "the cluster has an admin user already: creating a token needs "
            "an admin token",
        )
    if ClusterToken.objects.filter(token_id=token_id).exists():
        return Refused("conflict", f"a token {token_id} exists already")
    by = entry.client_id or ""
    ClusterUser.objects.update_or_create(
        username=username,
        defaults={"permissions": ",".join(permissions)},
        create_defaults={
            "permissions": ",".join(permissions),
            "created_index": entry.index,
            "created_ms": entry.timestamp_ms,
            "created_by": by,
        },
    )
    ClusterToken.objects.create(
        digest=digest,
        token_id=token_id,
        username=username,
        created_index=entry.index,
        created_ms=entry.timestamp_ms,
        created_by=by,
    )
    return None


def _set_permissions(op: dict, entry: Entry) -> Refused | None:
    username = check_username(op.get("username"))
    permissions = parse_permissions(op.get("permissions"))
    changed = ClusterUser.objects.filter(username=username).update(
        permissions=",".join(permissions)
    )
    return None if changed else _no_user(username)


def _revoke_token(op: dict, entry: Entry) -> Refused | None:
    token_id = op.get("token_id")
    if not isinstance(token_id, str):
        raise ValueError("token_id must be a string")
    deleted, _ = ClusterToken.objects.filter(token_id=token_id).delete()
    return None if deleted else Refused("not_found", f"no token {token_id}")


def _delete_user(op: dict, entry: Entry) -> Refused | None:
    username = check_username(op.get("username"))
    deleted, _ = ClusterUser.objects.filter(username=username).delete()
    if not deleted:
        return _no_user(username)
    ClusterToken.objects.filter(username=username).delete()
    return None


def _no_user(username: str) -> Refused:
    return Refused("not_found", f"no user {username}")


_HANDLERS = {
    "create_token": _create_token,
    "set_permissions": _set_permissions,
    "revoke_token": _revoke_token,
    "delete_user": _delete_user,
}


# --- reads (request threads) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """Who a valid token belongs to and what they may do."""

    username: str
    permissions: frozenset[str]
    token_id: str


def authenticate(token: str) -> Credential | None:
    """The user of ``token`` as this server has applied the log so far, or
    None. Looked up by digest: the tokens themselves are nowhere here."""
    if not TOKEN.fullmatch(token):
        return None
    row = ClusterToken.objects.filter(digest=token_digest(token)).first()
    if row is None:
        return None
    user = ClusterUser.objects.filter(username=row.username).first()
    if user is None:
        return None
    return Credential(
        user.username, frozenset(user.permissions.split(",")), row.token_id
    )


def has_admin() -> bool:
    """Whether any user has the admin permission (the first one is made
    without a token, from the node's own machine)."""
    return ClusterUser.objects.filter(permissions__contains=ADMIN).exists()
