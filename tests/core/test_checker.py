"""The safety checker's own tests: each Figure 3 property, broken by hand,
must be caught, and a legal history must pass."""

import pytest

from consensus.core.messages import Entry
from consensus.core.ready import HardState, Role

from .checker import (
    SafetyChecker,
    SafetyViolation,
    check_log_matching,
    check_log_pair,
    digest_of,
)

A, B, C = "10.0.0.1:9990", "10.0.0.2:9990", "10.0.0.3:9990"


def log(terms: str, tag: str = "") -> list[Entry]:
    """A log drawn as in the paper: the term of each entry, from index 1.
    Entries with the same (index, term, tag) are equal."""
    return [
        Entry(index, int(term), command=f"x{index}t{term}{tag}")
        for index, term in enumerate(terms.split(), 1)
    ]


def persist(checker: SafetyChecker, node: str, entries: list[Entry], first: int = 1):
    checker.persisted_log(node, entries, first)


# --- Election Safety ----------------------------------------------------


def test_two_leaders_in_one_term_are_caught():
    checker = SafetyChecker()
    checker.reported(1, A, Role.LEADER, 2, log("1"))
    with pytest.raises(SafetyViolation, match="Election Safety"):
        checker.reported(9, B, Role.LEADER, 2, log("1"))


def test_two_leaders_in_one_term_are_caught_across_the_whole_history():
    """A's leadership ended long before B's, in the same term: still two."""
    checker = SafetyChecker()
    checker.reported(1, A, Role.LEADER, 2, log("1"))
    checker.reported(2, A, Role.FOLLOWER, 3, log("1"))
    checker.reported(3, C, Role.LEADER, 3, log("1"))
    with pytest.raises(SafetyViolation, match="Election Safety"):
        checker.reported(4, B, Role.LEADER, 2, log("1"))


def test_one_leader_per_term_passes():
    checker = SafetyChecker()
    checker.reported(1, A, Role.LEADER, 2, log("1"))
    checker.reported(2, A, Role.FOLLOWER, 2, log("1"))  # stepped down
    checker.reported(3, A, Role.LEADER, 2, log("1"))  # the same server again
    checker.reported(4, B, Role.LEADER, 3, log("1"))
    assert checker.leader_of(2) == A and checker.leader_of(3) == B
    assert [(c.node, c.role, c.term) for c in checker.history][-1] == (
        B,
        Role.LEADER,
        3,
    )


# --- Log Matching -------------------------------------------------------


def test_divergent_logs_at_matching_index_and_term_are_caught():
    """Both hold (3, 2), but index 2 differs below it."""
    a = log("1 1 2")
    b = [a[0], Entry(2, 1, command="other"), a[2]]
    with pytest.raises(SafetyViolation, match="Log Matching.*differ at index 2"):
        check_log_matching({A: a, B: b})


def test_divergent_logs_are_caught_as_they_are_persisted():
    checker = SafetyChecker()
    a = log("1 1 2")
    persist(checker, A, a)
    with pytest.raises(SafetyViolation, match="Log Matching"):
        persist(checker, B, [a[0], Entry(2, 1, command="other"), a[2]])


def test_same_index_and_term_with_different_command_is_caught():
    with pytest.raises(SafetyViolation, match="Log Matching"):
        check_log_matching(
            {A: log("1 1 2"), B: log("1 1 2", tag="!")[:2] + log("1 1 2")[2:]}
        )


def test_logs_that_diverge_only_after_their_last_common_term_pass():
    """Figure 7's shape: followers may lack or hold extra uncommitted entries."""
    check_log_matching(
        {
            A: log("1 1 1 4 4 5 5 6 6 6"),
            B: log("1 1 1 4"),
            C: log("1 1 1 2 2 2 3 3 3 3 3"),
        }
    )
    checker = SafetyChecker()
    persist(checker, A, log("1 1 1 4 4 5 5 6 6 6"))
    persist(checker, C, log("1 1 1 2 2 2 3 3 3 3 3"))
    # C's uncommitted suffix is replaced by the leader's entries.
    persist(checker, C, log("1 1 1 4 4 5 5 6 6 6"), first=4)


def test_a_gap_in_a_persisted_log_is_caught():
    checker = SafetyChecker()
    persist(checker, A, log("1 1"))
    with pytest.raises(SafetyViolation, match="gap"):
        persist(checker, A, log("1 1 1 1"), first=4)


# --- Leader Append-Only --------------------------------------------------


def test_a_leader_deleting_its_own_entries_is_caught():
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(2, A))
    persist(checker, A, log("1 2 2"))
    checker.reported(1, A, Role.LEADER, 2, log("1 2 2"))
    with pytest.raises(SafetyViolation, match="Leader Append-Only"):
        persist(checker, A, log("1 2"), first=3)


def test_a_deposed_leader_may_lose_its_uncommitted_entries():
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(2, A))
    persist(checker, A, log("1 2 2"))
    checker.reported(1, A, Role.LEADER, 2, log("1 2 2"))
    checker.persisted_hard_state(A, HardState(3, None))
    persist(checker, A, log("1 3"), first=2)


# --- Leader Completeness ------------------------------------------------


def test_a_committed_entry_missing_from_a_later_leader_is_caught():
    checker = SafetyChecker()
    committed = log("1 2 2")
    checker.applied(A, committed)
    with pytest.raises(SafetyViolation, match="Leader Completeness.*index=3"):
        checker.reported(5, B, Role.LEADER, 3, committed[:2])


def test_a_different_entry_at_a_committed_index_in_a_later_leader_is_caught():
    """Figure 8 (d) after (c) committed index 2: the leader must hold it."""
    checker = SafetyChecker()
    checker.applied(A, log("1 2"))
    with pytest.raises(SafetyViolation, match="Leader Completeness"):
        checker.reported(5, C, Role.LEADER, 5, log("1 3"))


def test_a_later_leader_with_every_committed_entry_passes():
    checker = SafetyChecker()
    checker.applied(A, log("1 2"))
    checker.reported(5, B, Role.LEADER, 4, log("1 2 4 4"))


# --- State Machine Safety ------------------------------------------------


def test_two_different_entries_applied_at_one_index_are_caught():
    checker = SafetyChecker()
    checker.applied(A, log("1 1"))
    with pytest.raises(SafetyViolation, match="State Machine Safety"):
        checker.applied(B, log("1 2"))


def test_applying_an_index_twice_is_caught():
    """Including across a restart: the last applied index is durable."""
    checker = SafetyChecker()
    checker.applied(A, log("1 1"))
    with pytest.raises(SafetyViolation, match="applied index 2 after 2"):
        checker.applied(A, log("1 1")[1:])


def test_applying_out_of_order_is_caught():
    checker = SafetyChecker()
    with pytest.raises(SafetyViolation, match="applied index 2 after 0"):
        checker.applied(A, log("1 1")[1:])


def test_deleting_an_applied_entry_is_caught():
    checker = SafetyChecker()
    persist(checker, A, log("1 1 1"))
    checker.applied(A, log("1 1"))
    with pytest.raises(SafetyViolation, match="committed entries must never"):
        persist(checker, A, log("1 3"), first=2)


# --- Terms and votes -----------------------------------------------------


def test_a_persisted_term_decrease_is_caught():
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(3))
    with pytest.raises(SafetyViolation, match="never decrease"):
        checker.persisted_hard_state(A, HardState(2))


def test_a_reported_term_decrease_after_a_restart_is_caught():
    checker = SafetyChecker()
    checker.reported(1, A, Role.FOLLOWER, 3, [])
    with pytest.raises(SafetyViolation, match="never decrease"):
        checker.reported(2, A, Role.FOLLOWER, 2, [])  # restarted from stale disk


def test_a_double_vote_on_disk_is_caught():
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(3, B))
    with pytest.raises(SafetyViolation, match="at most one vote"):
        checker.persisted_hard_state(A, HardState(3, C))


def test_a_vote_forgotten_within_its_term_is_caught():
    """Clearing voted_for without a new term would allow a second vote."""
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(3, B))
    with pytest.raises(SafetyViolation, match="at most one vote"):
        checker.persisted_hard_state(A, HardState(3, None))


def test_a_double_vote_on_the_wire_is_caught():
    checker = SafetyChecker()
    checker.granted_vote(A, 3, B)
    checker.granted_vote(A, 3, B)  # a repeated answer to the same candidate
    with pytest.raises(SafetyViolation, match="both"):
        checker.granted_vote(A, 3, C)


def test_a_new_vote_in_a_new_term_passes():
    checker = SafetyChecker()
    checker.persisted_hard_state(A, HardState(3, B))
    checker.persisted_hard_state(A, HardState(4, None))
    checker.persisted_hard_state(A, HardState(4, C))
    checker.granted_vote(A, 3, B)
    checker.granted_vote(A, 4, C)


# --- Snapshots (Raft §7) ---------------------------------------------------


def test_state_machines_must_agree_at_equal_applied_indexes():
    checker = SafetyChecker()
    checker.state_at(A, 2, digest_of(log("1 1")))
    checker.state_at(B, 2, digest_of(log("1 1")))
    with pytest.raises(SafetyViolation, match="State machines differ"):
        checker.state_at(C, 2, digest_of(log("1 1", tag="other")))


def test_a_restore_must_move_forward_and_hold_what_was_applied():
    checker = SafetyChecker()
    checker.applied(A, log("1 1 2"))
    checker.restored(B, 3, log("1 1 2"))
    with pytest.raises(SafetyViolation, match="after applying 3"):
        checker.restored(B, 2, log("1 1"))
    with pytest.raises(SafetyViolation, match="State Machine Safety"):
        checker.restored(C, 3, log("1 1 2", tag="other"))


def test_log_matching_holds_across_a_compacted_prefix():
    """Logs that start at different indexes are compared where both hold
    entries; an installed snapshot counts as the prefix it replaced."""
    a, b = log("1 1 2 2 3"), log("1 1 2 2 3")
    check_log_pair(A, a[3:], B, b[1:])
    tampered = b[:2] + [Entry(3, 2, command="tampered")] + b[3:]
    with pytest.raises(SafetyViolation, match="Log Matching"):
        check_log_pair(A, a[1:], B, tampered[2:])
    checker = SafetyChecker()
    persist(checker, A, a)
    checker.installed(B, 4, 2)
    persist(checker, B, a[4:], 5)
    with pytest.raises(SafetyViolation, match="no server ever held"):
        checker.installed(C, 4, 7)


def test_leader_completeness_counts_the_snapshot():
    checker = SafetyChecker()
    committed = log("1 1 2")
    checker.applied(A, committed)
    checker.reported(1, B, Role.LEADER, 3, committed[2:], snapshot=committed[:2])
    with pytest.raises(SafetyViolation, match="Leader Completeness"):
        checker.reported(2, C, Role.LEADER, 4, committed[2:])
