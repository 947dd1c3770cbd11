"""Elections: the timer, a candidate's Campaign and a voter's rules.

Raft §5.2, §5.4.1; dissertation §9.6 (pre-vote), §4.2.3 (leader
stickiness), §3.10 (transfer). Standard library only.
"""

from __future__ import annotations

import random

from . import quorum
from .configuration import Configuration
from .log import RaftLog
from .messages import Message, RequestVote, RequestVoteReply


class ElectionTimer:
    """Raft §5.2's randomized election timeout, and how long ago the
    current leader was last heard from (dissertation §4.2.3, §9.6)."""

    def __init__(self, timeout_ticks: int, rng: random.Random):
        self.timeout_ticks = timeout_ticks
        self.rng = rng
        self.elapsed = 0
        self.timeout = timeout_ticks
        # Ticks since the last AppendEntries from the current leader.
        self.leader_elapsed = timeout_ticks
        self.reset()

    def reset(self) -> None:
        # Raft §5.2: a fresh random timeout in [T, 2T) at every reset, so
        # split votes do not repeat.
        self.timeout = self.rng.randrange(self.timeout_ticks, 2 * self.timeout_ticks)
        self.elapsed = 0

    def heard_from_leader(self) -> None:
        self.reset()
        self.leader_elapsed = 0

    def tick(self) -> bool:
        """Advance one tick; True once the election timeout has passed."""
        self.elapsed += 1
        self.leader_elapsed += 1
        return self.elapsed >= self.timeout

    def leader_is_recent(self) -> bool:
        """Heard from the leader within the minimum election timeout."""
        return self.leader_elapsed < self.timeout_ticks


class Campaign:
    """One election or pre-vote round, from the candidate's side."""

    def __init__(
        self,
        candidate_id: str,
        term: int,
        configuration: Configuration,
        pre_vote: bool = False,
        transfer: bool = False,
    ):
        self.candidate_id = candidate_id
        # The term votes are asked for: current_term + 1 for a pre-vote
        # (current_term itself is left alone), current_term otherwise.
        self.term = term
        # Dissertation §4.1: votes count only from the voters of the
        # configuration the candidate holds now.
        self.voters = configuration.voters
        self.pre_vote = pre_vote
        self.transfer = transfer
        # A candidate votes for itself (Raft §5.2).
        self.votes: dict[str, bool] = {candidate_id: True}

    def record(self, voter: str, granted: bool) -> quorum.VoteResult:
        self.votes.setdefault(voter, granted)
        return self.result()

    def result(self) -> quorum.VoteResult:
        return quorum.vote_result(self.voters, self.votes)

    def requests(self, log: RaftLog) -> list[RequestVote]:
        return [
            RequestVote(
                term=self.term,
                source=self.candidate_id,
                dest=voter,
                last_log_index=log.last_index,
                last_log_term=log.last_term,
                pre_vote=self.pre_vote,
                transfer=self.transfer,
            )
            for voter in sorted(self.voters - {self.candidate_id})
        ]


def adopts_term(message: Message, in_lease: bool) -> bool:
    """Does a message with a newer term make the receiver adopt it (§5.1)?

    ``in_lease``: the receiver heard from a current leader within the
    minimum election timeout (dissertation §4.2.3), or is the leader.
    """
    if isinstance(message, RequestVote):
        if message.pre_vote:
            # Dissertation §9.6: a pre-vote changes nobody's term.
            return False
        # §4.2.3: a RequestVote while a leader is in touch is ignored
        # entirely, term included, unless it comes from a transfer (§3.10).
        return message.transfer or not in_lease
    if isinstance(message, RequestVoteReply) and message.pre_vote:
        # A granted pre-vote carries the asked-for term and changes nothing.
        # A refusal carrying a newer term is adopted, as etcd does: it
        # disturbs nobody, and without it a server that missed a term could
        # keep pre-voting below everyone's term, never to be elected.
        return not message.vote_granted
    return True


def grant_vote(
    request: RequestVote,
    log: RaftLog,
    current_term: int,
    voted_for: str | None,
    in_lease: bool,
) -> bool:
    """Would this server grant ``request``? The caller records a real vote.

    Called after any term change the request causes, so a real vote is
    asked for at current_term or is stale.
    """
    # Raft §5.4.1: never vote for a candidate whose log is behind ours.
    up_to_date = log.is_up_to_date(request.last_log_index, request.last_log_term)
    if request.pre_vote:
        # Dissertation §9.6: would a vote at request.term be granted? A
        # server in touch with a leader says no.
        return request.term > current_term and up_to_date and not in_lease
    if request.term < current_term:
        # Raft Figure 2, RequestVote receiver rule 1: reply false if
        # term < currentTerm (a candidate of an older term cannot win).
        return False
    if not up_to_date:
        return False
    if in_lease and not request.transfer:
        return False
    # Raft §5.2: at most one vote per term, first come first served.
    return voted_for in (None, request.source)
