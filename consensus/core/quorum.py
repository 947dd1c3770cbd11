"""Majority arithmetic over a configuration's voters (Raft §5.2, §5.3).

Standard library only; functions of plain sets and mappings.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def majority(n: int) -> int:
    """The smallest number of voters that is more than half of ``n``."""
    return n // 2 + 1


def has_quorum(voters: Collection[str], agreeing: Collection[str]) -> bool:
    """Do the voters in ``agreeing`` form a majority of ``voters``?

    An empty configuration has no quorum: nobody can decide for it.
    """
    if not voters:
        return False
    return sum(1 for v in voters if v in agreeing) >= majority(len(voters))


def committed_index(voters: Collection[str], match_index: Mapping[str, int]) -> int:
    """The highest N that a majority of ``voters`` hold (match_index >= N).

    Raft §5.3 / Figure 2 leader rule; the caller still applies §5.4.2's
    current-term check. Voters missing from ``match_index`` count as 0.
    """
    return majority_index([match_index.get(v, 0) for v in voters])


def majority_index(matches: Collection[int]) -> int:
    """The highest N that a majority of ``matches`` (one per voter) reach;
    0 for no voters."""
    if not matches:
        return 0
    return sorted(matches, reverse=True)[majority(len(matches)) - 1]


def vote_result(voters: Collection[str], votes: Mapping[str, bool]) -> VoteResult:
    """Tally ``votes`` (voter -> granted) over ``voters`` (§5.2).

    Votes from servers outside ``voters`` are not counted.
    """
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    if voters and granted >= majority(len(voters)):
        return VoteResult.WON
    if rejected > len(voters) - majority(len(voters)):
        return VoteResult.LOST
    return VoteResult.PENDING
