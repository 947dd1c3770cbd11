"""'Added new peer' / 'Removed peer' when a configuration change is applied."""

import logging

import pytest

from consensus.core.configuration import Configuration
from consensus.core.messages import Entry, EntryType
from consensus.state_machine import StateMachine
from consensus.storage import Storage

pytestmark = pytest.mark.django_db(transaction=True)

A, B, C, D = (f"127.0.0.1:999{n}" for n in range(4))


@pytest.fixture(autouse=True)
def schema():
    Storage().prepare([])


def config(index, voters, learners=()):
    text = Configuration(frozenset(voters), frozenset(learners)).to_json()
    return Entry(index, 1, EntryType.CONFIG, text)


def test_only_voting_changes_are_announced(caplog):
    """The initial configuration is not a change; a learner is not a peer
    until promoted; removing a voter is announced."""
    machine = StateMachine()
    machine.load()
    with caplog.at_level(logging.INFO, logger="raft"):
        machine.apply(config(1, [A, B, C]))
        machine.apply(config(2, [A, B, C], [D]))
        machine.apply(config(3, [A, B, C, D]))
        machine.apply(config(4, [A, C, D]))
        machine.apply(config(5, [A, C, D], [B]))
        machine.apply(config(6, [A, C, D]))
    assert [r.getMessage() for r in caplog.records] == [
        f"Added new peer {D}",
        f"Removed peer {B}",
    ]


def test_changes_applied_before_a_restart_are_not_announced_again(caplog):
    """The applied configuration is stored: after a restart nothing is
    replayed, and the next change is compared with the stored one."""
    machine = StateMachine()
    machine.load()
    machine.apply(config(1, [A, B, C]))
    machine.apply(config(2, [A, B, C, D]))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="raft"):
        machine = StateMachine()
        machine.load()
        machine.apply(config(3, [A, B, C]))
    assert [r.getMessage() for r in caplog.records] == [f"Removed peer {D}"]


def test_only_members_of_the_new_configuration_announce(caplog):
    """A new server replaying older changes, or a server applying its own
    removal, prints nothing; the promotion that makes it a voter prints."""
    machine = StateMachine(node_id=D)
    machine.load()
    with caplog.at_level(logging.INFO, logger="raft"):
        machine.apply(config(1, [A, B, C]))
        machine.apply(config(2, [A, B]))
        machine.apply(config(3, [A, B], [D]))
        machine.apply(config(4, [A, B, D]))
        machine.apply(config(5, [A, B]))
    assert [r.getMessage() for r in caplog.records] == [f"Added new peer {D}"]
