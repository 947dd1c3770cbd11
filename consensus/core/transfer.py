"""Leadership transfer (dissertation §3.10), RaftNode's side: starting one,
TimeoutNow and its staleness rule, outdating a TimeoutNow given up. The
leader's bookkeeping is in leader.py. Standard library only."""

from __future__ import annotations

from .api import NotLeader
from .messages import Entry, EntryType, TimeoutNow
from .ready import Ready, Role


class TransferMixin:
    """Leadership transfer for RaftNode, whose state and helpers it uses."""

    def transfer_leadership(self, to: str | None = None) -> Ready:
        """Dissertation §3.10: hand leadership to ``to`` (None: the most
        up-to-date voter). Raises NotLeader if not leader, TransferRefused
        for an unknown or non-voting target."""
        leader = self.leader_state
        if leader is None:
            raise NotLeader(self.leader_id)
        if to == self.id:
            return Ready()
        target = leader.start_transfer(to)
        self._begin()
        self._outdate_timeout_now()
        message = leader.maybe_timeout_now() or leader.replicate(
            target, self.commit_index
        )
        if message is not None:
            self._send([message])
        return self._end()

    def _handle_timeout_now(self, message: TimeoutNow) -> None:
        """Dissertation §3.10: campaign at once, skipping pre-vote and past
        the voters' leader stickiness (§4.2.3), but only for a transfer
        still under way.

        A TimeoutNow can outlive its transfer: delayed in the network, or
        repeated after a later reply (departure 9), it may arrive after the
        leader gave the transfer up (an election timeout passed, or another
        target replaced it) and went on leading. Acting on it then would
        depose a healthy leader. So it counts only if it is:

        - from the leader this server follows, in the current term: not
          from an older term or leader, and not after a restart (leader
          unknown) or when already campaigning;
        - sent when this server's log was exactly the leader's, and this
          server's log is still that: it ends at the TimeoutNow's
          last_log_index and last_log_term. Not merely "holds that
          entry": while a transfer lasts the leader appends nothing
          (proposals are held), so a log longer than that holds what the
          leader appended after the transfer ended, and the TimeoutNow is
          stale. Entries replacing that last one (another leader) fail the
          term check.

        On giving up after a TimeoutNow went out, the leader appends a NOOP
        even with no client writes (_outdate_timeout_now), so every stale
        TimeoutNow is recognised once that NOOP reaches the target. One
        that arrives before it cannot be told from a live one; the target
        then campaigns with a log behind the leader's, and the voters that
        hold the NOOP deny it (§5.4.1).
        """
        log = self.log
        if (
            message.term != self.current_term
            or message.source != self.leader_id
            or self.role is not Role.FOLLOWER
            or message.last_log_index != log.last_index
            or message.last_log_term != log.last_term
        ):
            return
        if self.id in self.configuration.voters:
            self._campaign(pre_vote=False, transfer=True)

    def _outdate_timeout_now(self) -> None:
        """After a transfer was given up with its TimeoutNow already sent,
        append a NOOP of this term: the target's log then grows past the
        TimeoutNow's last entry, which makes it stale wherever it still
        is (_handle_timeout_now). Dissertation §3.10 leaves aborting to the
        leader; this makes the abort visible to the target."""
        leader = self.leader_state
        if leader is None or not leader.take_gave_up():
            return
        self._append(
            [Entry(self.log.last_index + 1, self.current_term, EntryType.NOOP)]
        )
        self._maybe_commit()
        if self.leader_state is not None:
            self._send(self.leader_state.broadcast(self.commit_index))
