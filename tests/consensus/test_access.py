"""consensus.access through the state machine: ACCESS entries make, change
and remove users and tokens alike on every server, refuse what cannot apply
without changing anything, and never store a token."""

import json

import pytest

from consensus import access
from consensus.core.messages import Entry, EntryType
from consensus.models import ClusterToken, ClusterUser, MembershipChange
from consensus.state_machine import Applied, Refused, StateMachine

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG_1 = '{"voters":["a:1"],"learners":[]}'
CONFIG_2 = '{"voters":["a:1"],"learners":["b:2"]}'


class Log:
    """A state machine fed entries one index after the other."""

    def __init__(self):
        self.sm = StateMachine()
        self.sm.load()

    def apply(self, type_, command, client_id=None, timestamp_ms=1000):
        index = self.sm.last_applied + 1
        entry = Entry(index, 1, type_, command, client_id, None, timestamp_ms)
        return self.sm.apply(entry)

    def access(self, op, by="root"):
        return self.apply(EntryType.ACCESS, op, by)


def create(log, username, permissions, bootstrap=False, by="root"):
    minted = access.mint_token()
    op = access.create_token_op(username, permissions, minted, bootstrap=bootstrap)
    return minted, log.access(op, by)


def test_a_token_authenticates_its_user_and_only_its_digest_is_kept():
    log = Log()
    minted, answer = create(log, "alice", ("read", "write"), by="first admin")
    assert answer == Applied(1, 1)
    assert access.TOKEN.fullmatch(minted.token)
    credential = access.authenticate(minted.token)
    assert credential.username == "alice"
    assert credential.permissions == {"read", "write"}
    assert credential.token_id == minted.token_id
    row = ClusterToken.objects.get()
    assert row.digest == access.token_digest(minted.token) != minted.token
    assert minted.token not in json.dumps(list(ClusterToken.objects.values()))
    user = ClusterUser.objects.get()
    assert (user.created_index, user.created_by) == (1, "first admin")
    # A token one character off is nobody's.
    other = "A" if minted.token[-1] != "A" else "B"
    assert access.authenticate(minted.token[:-1] + other) is None
    assert access.authenticate("not a token") is None


def test_a_first_admin_applies_only_while_there_is_none():
    log = Log()
    _, first = create(log, "root", ("admin",), bootstrap=True)
    assert isinstance(first, Applied)
    assert access.has_admin()
    minted, second = create(log, "mallory", ("admin",), bootstrap=True)
    assert isinstance(second, Refused) and second.reason == "conflict"
    assert access.authenticate(minted.token) is None
    assert not ClusterUser.objects.filter(username="mallory").exists()
    # The log moved on all the same: the refusal is an applied entry.
    assert log.sm.last_applied == 2


def test_permissions_revocation_and_deletion():
    log = Log()
    keep, _ = create(log, "bob", ("read",))
    drop, _ = create(log, "bob", ("read", "write"))
    # A second token sets the user's permissions for both.
    assert access.authenticate(keep.token).permissions == {"read", "write"}
    assert log.access(access.revoke_token_op(drop.token_id)) == Applied(3, 1)
    assert access.authenticate(drop.token) is None
    assert access.authenticate(keep.token) is not None
    unknown = log.access(access.revoke_token_op(drop.token_id))
    assert isinstance(unknown, Refused) and unknown.reason == "not_found"
    log.access(access.set_permissions_op("bob", ("admin",)))
    assert access.authenticate(keep.token).permissions == {"admin"}
    log.access(access.delete_user_op("bob"))
    assert access.authenticate(keep.token) is None
    assert not ClusterToken.objects.exists()
    gone = log.access(access.delete_user_op("bob"))
    assert isinstance(gone, Refused) and gone.reason == "not_found"


@pytest.mark.parametrize(
    "command",
    [
        "not json",
        "[]",
        '{"op": "drop_tables"}',
        '{"op": "create_token", "username": "x y", "permissions": ["read"],'
        ' "token_id": "0123456789ab", "digest": "' + "0" * 64 + '"}',
        '{"op": "create_token", "username": "x", "permissions": ["root"],'
        ' "token_id": "0123456789ab", "digest": "' + "0" * 64 + '"}',
        '{"op": "create_token", "username": "x", "permissions": ["read"],'
        ' "token_id": "0123456789ab", "digest": "short"}',
    ],
)
def test_a_malformed_operation_is_refused_and_changes_nothing(command):
    log = Log()
    answer = log.access(command)
    assert isinstance(answer, Refused) and answer.reason == "conflict"
    assert not ClusterUser.objects.exists() and not ClusterToken.objects.exists()
    assert log.sm.last_applied == 1


def test_membership_changes_record_who_asked_and_when():
    log = Log()
    log.apply(EntryType.CONFIG, CONFIG_1)  # the initial configuration
    log.apply(EntryType.CONFIG, CONFIG_2, "root", timestamp_ms=1234)
    [change] = MembershipChange.objects.all()
    assert (change.index, change.requested_by, change.timestamp_ms) == (
        2,
        "root",
        1234,
    )
    assert change.configuration == CONFIG_2


@pytest.mark.parametrize(
    "value, expected",
    [
        ("read", ("read",)),
        ("admin, read", ("read", "admin")),
        (["write", "read", "write"], ("read", "write")),
    ],
)
def test_parse_permissions(value, expected):
    assert access.parse_permissions(value) == expected


@pytest.mark.parametrize("value", ["", "root", "read,sudo", 5, [1]])
def test_parse_permissions_refuses(value):
    with pytest.raises(ValueError):
        access.parse_permissions(value)
