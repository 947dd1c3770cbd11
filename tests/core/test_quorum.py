"""Majority and commit-index arithmetic."""

import pytest

from consensus.core import quorum
from consensus.core.quorum import VoteResult


@pytest.mark.parametrize("n, majority", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority(n, majority):
    assert quorum.majority(n) == majority


def test_has_quorum_counts_only_voters():
    voters = {"a", "b", "c"}
    assert quorum.has_quorum(voters, {"a", "b"})
    assert not quorum.has_quorum(voters, {"a", "x", "y"})
    assert not quorum.has_quorum(set(), {"a"})


@pytest.mark.parametrize(
    "matches, committed",
    [
        ({"a": 5}, 5),
        ({"a": 5, "b": 3, "c": 1}, 3),
        ({"a": 5, "b": 5, "c": 1, "d": 1}, 1),
        ({"a": 9, "b": 7, "c": 7, "d": 2, "e": 0}, 7),
    ],
)
def test_committed_index_is_the_majority_match(matches, committed):
    assert quorum.committed_index(set(matches), matches) == committed


def test_committed_index_ignores_non_voters_and_missing_count_as_zero():
    assert quorum.committed_index({"a", "b", "c"}, {"a": 9, "learner": 9}) == 0
    assert quorum.committed_index({"a", "b", "c"}, {"a": 9, "b": 4}) == 4
    assert quorum.committed_index(set(), {"a": 9}) == 0


@pytest.mark.parametrize(
    "matches, index",
    [([], 0), ([5], 5), ([1, 5, 3], 3), ([5, 1, 5, 1], 1), ([0, 7, 2, 9, 7], 7)],
)
def test_majority_index_is_the_highest_a_majority_reach(matches, index):
    assert quorum.majority_index(matches) == index


def test_vote_result():
    voters = {"a", "b", "c"}
    assert quorum.vote_result(voters, {"a": True}) is VoteResult.PENDING
    assert quorum.vote_result(voters, {"a": True, "b": True}) is VoteResult.WON
    assert quorum.vote_result(voters, {"a": True, "b": False}) is VoteResult.PENDING
    assert (
        quorum.vote_result(voters, {"a": True, "b": False, "c": False})
        is VoteResult.LOST
    )
    # Votes from outside the configuration do not count.
    assert quorum.vote_result(voters, {"a": True, "x": True}) is VoteResult.PENDING
