"""CatchUpRounds: dissertation §4.2.1's rounds, driven by a fake clock."""

from consensus.catchup import CatchUpRounds

ELECTION_TIMEOUT = 10


def test_a_server_already_holding_the_log_is_caught_up_at_once():
    rounds = CatchUpRounds(ELECTION_TIMEOUT, deadline=100)
    assert rounds.observe(0, last_index=50, match_index=50) is True


def test_slow_first_round_then_a_short_one():
    """The first round (the whole log) takes longer than an election
    timeout; the next, of what was appended meanwhile, is short."""
    rounds = CatchUpRounds(ELECTION_TIMEOUT, deadline=100)
    assert rounds.observe(0, last_index=1000, match_index=0) is None
    assert rounds.observe(15, last_index=1010, match_index=1000) is None
    assert rounds.rounds == 2  # the second round aims at 1010
    assert rounds.observe(18, last_index=1012, match_index=1010) is True


def test_a_server_that_never_keeps_up_is_given_up_at_the_deadline():
    rounds = CatchUpRounds(ELECTION_TIMEOUT, deadline=40)
    match = 0
    for now in range(0, 40, 5):
        # The leader appends as fast as the server receives.
        assert rounds.observe(now, last_index=match + 100, match_index=match) is None
        match += 40
    assert rounds.observe(40, last_index=match + 100, match_index=match) is False


def test_a_server_that_is_down_is_given_up_at_the_deadline():
    rounds = CatchUpRounds(ELECTION_TIMEOUT, deadline=30)
    assert rounds.observe(0, 20, 0) is None
    assert rounds.observe(29, 20, 0) is None
    assert rounds.observe(30, 20, 0) is False
