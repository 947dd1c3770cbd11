"""The history checker catches a synthetic history breaking each property,
and passes the histories that keep them all."""

import pytest

from tests.faults import checker
from tests.faults.workload import FAIL, OK, UNKNOWN, History, Op, Sample

A, B, C = "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"  # names only


def op(command, invoke, complete, outcome, index=None, term=1, status=None):
    client_id, seq = command.split(":")
    status = status or {OK: 200, FAIL: 503, UNKNOWN: 504}[outcome]
    return Op(
        client_id, int(seq), command, A, invoke, complete, outcome,
        index if outcome == OK else None, term if outcome == OK else None, status,
    )  # fmt: skip


def entry(index, command=None, term=1, type_=None):
    type_ = type_ or ("noop" if command is None else "command")
    return {"index": index, "term": term, "type": type_, "command": command}


def base_log():
    return [
        entry(1, term=0, type_="config"),
        entry(2),
        entry(3, "c0:1"),
        entry(4, "c1:1"),
        entry(5, "c0:2"),
    ]


def base_history():
    history = History(seed=1, nodes=[A, B, C])
    history.ops = [
        op("c0:1", 0.0, 0.1, OK, index=3),
        op("c1:1", 0.05, 0.2, OK, index=4),
        op("c0:2", 0.3, 0.4, UNKNOWN),  # timed out, yet committed: fine
        op("c1:2", 0.3, 0.5, FAIL),  # 503: must never appear
        op("c1:3", 0.6, 0.7, UNKNOWN),  # timed out, never committed: fine
    ]
    history.samples = [
        Sample(0.0, A, 1, "leader", A, 2),
        Sample(0.0, B, 1, "follower", A, 2),
        Sample(0.1, C, 1, "follower", A, 2),
        Sample(0.2, A, 1, "leader", A, 5),
    ]
    return history


def all_logs(log=None):
    log = log if log is not None else base_log()
    return {A: list(log), B: list(log), C: list(log)}


def kinds(violations):
    return {v.kind for v in violations}


def test_a_history_that_keeps_every_property_passes():
    assert checker.check(base_history(), all_logs(), {A: [1], B: [], C: []}) == []


def test_acknowledged_command_missing_from_one_server_is_lost():
    logs = all_logs()
    logs[C] = [e for e in logs[C] if e["command"] != "c1:1"]
    violations = checker.check(base_history(), logs)
    assert checker.LOST in kinds(violations)
    assert any(C in v.detail and "c1:1" in v.detail for v in violations)


def test_acknowledged_command_missing_everywhere_is_lost_on_every_server():
    log = [e for e in base_log() if e["command"] != "c0:1"]
    violations = [
        v
        for v in checker.check(base_history(), all_logs(log))
        if v.kind == checker.LOST
    ]
    assert len(violations) == 3


def test_acknowledged_at_another_index_is_caught():
    log = base_log()
    log[2], log[3] = entry(3, "c1:1"), entry(4, "c0:1")
    assert checker.WRONG_INDEX in kinds(checker.check(base_history(), all_logs(log)))


def test_acknowledged_with_another_term_is_caught():
    log = base_log()
    log[2] = entry(3, "c0:1", term=2)
    assert checker.WRONG_INDEX in kinds(checker.check(base_history(), all_logs(log)))


def test_acknowledged_command_twice_is_a_duplicate():
    log = base_log() + [entry(6, "c0:1")]
    assert checker.DUPLICATE in kinds(checker.check(base_history(), all_logs(log)))


def test_unknown_outcome_command_twice_is_a_duplicate():
    log = base_log() + [entry(6, "c0:2")]
    violations = checker.check(base_history(), all_logs(log))
    assert kinds(violations) == {checker.DUPLICATE}
    assert "c0:2" in violations[0].detail and "unknown" in violations[0].detail


def test_command_no_client_sent_is_a_phantom():
    log = base_log() + [entry(6, "c9:1")]
    violations = checker.check(base_history(), all_logs(log))
    assert kinds(violations) == {checker.PHANTOM}
    assert len(violations) == 1  # reported once, not once per server


@pytest.mark.parametrize("status", [400, 503])
def test_definitely_failed_command_in_the_log_is_caught(status):
    history = base_history()
    history.ops[3].status = status
    log = base_log() + [entry(6, "c1:2")]
    assert kinds(checker.check(history, all_logs(log))) == {checker.FAILED_APPLIED}


def test_refused_connection_counts_as_failed():
    history = base_history()
    history.ops[3].status, history.ops[3].error = None, "ConnectionError"
    log = base_log() + [entry(6, "c1:2")]
    assert checker.FAILED_APPLIED in kinds(checker.check(history, all_logs(log)))


def test_acknowledged_before_invoke_but_indexed_after_breaks_real_time():
    history = base_history()
    # c1:1 invoked at 0.25, after c0:1 was acknowledged (0.1): needs index > 3.
    history.ops[1].invoke = 0.25
    log = base_log()
    log[2], log[3] = entry(3, "c1:1"), entry(4, "c0:1")
    history.ops[0].index, history.ops[1].index = 4, 3
    violations = checker.check(history, all_logs(log))
    assert kinds(violations) == {checker.REALTIME}
    assert "'c0:1'" in violations[0].detail and "'c1:1'" in violations[0].detail


def test_concurrent_operations_may_commit_in_either_order():
    history = base_history()
    # c1:1 invoked (0.05) before c0:1 completed (0.1): either order is fine.
    log = base_log()
    log[2], log[3] = entry(3, "c1:1"), entry(4, "c0:1")
    history.ops[0].index, history.ops[1].index = 4, 3
    assert checker.check(history, all_logs(log)) == []


def test_unknown_outcome_found_in_log_is_held_to_real_time():
    history = base_history()
    # c0:2 (unknown) was invoked at 0.3, after both acks: at index 2 it
    # would have taken effect before ops acknowledged earlier.
    log = base_log()
    log[1], log[4] = entry(2, "c0:2"), entry(5)
    assert checker.REALTIME in kinds(checker.check(history, all_logs(log)))


def test_servers_that_differ_at_an_index_diverge():
    logs = all_logs()
    logs[B] = base_log()[:4] + [entry(5, "c0:2", term=2)]
    assert checker.DIVERGENCE in kinds(checker.check(base_history(), logs))


def test_a_server_missing_the_tail_diverges():
    logs = all_logs()
    logs[C] = base_log()[:-1]
    assert kinds(checker.check(base_history(), logs)) == {checker.DIVERGENCE}


def test_a_log_that_skips_an_index_has_a_gap():
    log = base_log()
    del log[1]
    assert checker.GAP in kinds(checker.check(base_history(), all_logs(log)))


def test_two_leaders_in_one_term_from_status_samples():
    history = base_history()
    history.samples.append(Sample(0.3, B, 1, "leader", B, 5))
    violations = checker.check(history, all_logs())
    assert kinds(violations) == {checker.MULTIPLE_LEADERS}
    assert "term 1" in violations[0].detail


def test_two_leaders_in_one_term_from_stdout_lines():
    violations = checker.check(
        base_history(), all_logs(), {A: [1, 3], B: [2, 3], C: []}
    )
    assert kinds(violations) == {checker.MULTIPLE_LEADERS}
    assert "term 3" in violations[0].detail


def test_two_leaders_in_one_term_one_seen_by_status_one_by_stdout():
    violations = checker.check(base_history(), all_logs(), {A: [], B: [1], C: []})
    assert kinds(violations) == {checker.MULTIPLE_LEADERS}


def test_the_same_leader_twice_in_a_term_is_fine():
    history = base_history()
    assert checker.check(history, all_logs(), {A: [1, 1], B: [], C: []}) == []


def test_a_term_that_goes_down_is_caught():
    history = base_history()
    history.samples += [
        Sample(0.4, B, 3, "follower", A, 5),
        Sample(0.5, B, 2, "follower", A, 5),
    ]
    violations = checker.check(history, all_logs())
    assert kinds(violations) == {checker.TERM_DECREASE}
    assert B in violations[0].detail


def test_terms_of_different_servers_are_not_compared():
    history = base_history()
    history.samples += [
        Sample(0.4, B, 3, "follower", None, 5),
        Sample(0.5, C, 2, "follower", None, 5),
    ]
    assert checker.check(history, all_logs()) == []


def test_many_violations_of_one_kind_are_capped():
    history = History(seed=1, nodes=[A])
    history.ops = [op(f"c0:{n}", n, n + 0.5, OK, index=n + 1) for n in range(1, 40)]
    violations = checker.check(history, {A: []})
    assert len(violations) == checker.MAX_PER_KIND + 1
    assert "more of this kind" in violations[-1].detail


def test_history_round_trips_through_json(tmp_path):
    history = base_history()
    history.event("start", "kill", "#0 kill")
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded.to_json() == history.to_json()
    assert checker.check(loaded, all_logs()) == []


def test_an_unsettled_cluster_is_checked_on_what_it_holds():
    """A lagging server after a liveness failure is not a divergence, but
    the longest log must still hold every acknowledged command."""
    logs = all_logs()
    logs[C] = base_log()[:3]
    assert checker.check(base_history(), logs, settled=False) == []
    logs[A] = logs[B] = [e for e in base_log() if e["command"] != "c1:1"]
    assert checker.LOST in kinds(checker.check(base_history(), logs, settled=False))
    logs[B] = base_log()[:2] + [entry(3, "c9:1")]
    assert checker.DIVERGENCE in kinds(
        checker.check(base_history(), logs, settled=False)
    )


def test_a_log_whose_terms_go_down_is_caught():
    log = base_log()
    log[3] = entry(4, "c1:1", term=2)  # then c0:2 at index 5 in term 1
    history = base_history()
    history.ops[1].term = 2
    assert kinds(checker.check(history, all_logs(log))) == {checker.LOG_TERMS}


# -- membership: a removed server's log ------------------------------------


def test_a_removed_server_may_lack_later_entries():
    logs = all_logs()
    logs[C] = logs[C][:3]  # removed after index 3
    assert checker.check(base_history(), logs, members=[A, B]) == []


def test_a_removed_server_must_agree_where_it_has_entries():
    logs = all_logs()
    logs[C] = [*logs[C][:2], entry(3, "c0:1", term=2)]
    assert kinds(checker.check(base_history(), logs, members=[A, B])) == {
        checker.DIVERGENCE
    }


def test_every_final_member_must_hold_the_acknowledged_commands():
    logs = all_logs()
    logs[B] = logs[B][:3]  # B is still a member: c1:1 lost there
    found = checker.check(base_history(), logs, members=[A, B])
    assert checker.LOST in kinds(found) and checker.DIVERGENCE in kinds(found)


def test_a_committed_entry_only_a_removed_server_holds_is_a_divergence():
    logs = all_logs()
    logs[A] = logs[A][:4]
    logs[B] = logs[B][:4]
    found = checker.check(base_history(), logs, members=[A, B])
    assert checker.DIVERGENCE in kinds(found)


# -- retries of one (client_id, seq) ---------------------------------------


def retried_history():
    """c0:2 timed out, was sent again and acknowledged with the first copy's
    answer; the retry reached the log a second time."""
    history = base_history()
    retry = op("c0:2", 0.45, 0.5, OK, index=5)
    retry.attempt = 1
    history.ops.append(retry)
    return history


def retried_log():
    return [*base_log(), entry(6, "c0:2")]


def test_a_retry_that_reached_the_log_twice_is_fine():
    history = retried_history()
    applied = {s: ["c0:1", "c1:1", "c0:2"] for s in (A, B, C)}
    assert checker.check(history, all_logs(retried_log()), applied=applied) == []


def test_a_retry_acknowledged_at_its_second_copy_breaks_the_contract():
    history = retried_history()
    history.ops[-1].index = 6  # the state machine answered for the copy
    found = kinds(checker.check(history, all_logs(retried_log())))
    assert found == {checker.WRONG_INDEX}


def test_two_acknowledgements_of_one_pair_must_agree():
    history = retried_history()
    history.ops[2] = op("c0:2", 0.3, 0.35, OK, index=5)
    history.ops[-1].index, history.ops[-1].term = 6, 1
    assert checker.RETRY_ANSWER in kinds(
        checker.check(history, all_logs(retried_log()))
    )


def test_a_command_applied_twice_is_caught():
    applied = {A: ["c0:1", "c1:1", "c0:2", "c0:2"]}
    found = checker.check(retried_history(), all_logs(retried_log()), applied=applied)
    assert kinds(found) == {checker.APPLIED_TWICE}
    assert "'c0:2'" in str(found[0])


def test_more_copies_than_attempts_is_a_duplicate():
    log = [*retried_log(), entry(7, "c0:2")]
    assert checker.DUPLICATE in kinds(checker.check(retried_history(), all_logs(log)))


def test_a_pair_fails_definitely_only_if_every_attempt_did():
    history = base_history()
    retry = op("c1:2", 0.55, 0.6, UNKNOWN)
    retry.attempt = 1
    history.ops.insert(3, op("c1:2", 0.3, 0.5, UNKNOWN))
    history.ops[4] = retry
    history.ops.append(op("c1:2", 0.65, 0.7, FAIL))
    log = [*base_log(), entry(6, "c1:2")]
    assert checker.check(history, all_logs(log)) == []
    history.ops = [o for o in history.ops if o.command != "c1:2"]
    history.ops.append(op("c1:2", 0.3, 0.5, FAIL))
    assert kinds(checker.check(history, all_logs(log))) == {checker.FAILED_APPLIED}


def test_realtime_counts_a_retried_command_from_its_first_attempt():
    history = base_history()
    # c1:3 first sent at 0.6 (unknown), acknowledged by a retry at 1.0 with
    # index 6; c0:3 acknowledged in between at index 7: no violation.
    history.ops.append(op("c0:3", 0.7, 0.8, OK, index=7))
    retry = op("c1:3", 0.9, 1.0, OK, index=6)
    retry.attempt = 1
    history.ops.append(retry)
    log = [*base_log(), entry(6, "c1:3"), entry(7, "c0:3")]
    assert checker.check(history, all_logs(log)) == []


# -- compacted logs (Raft §7): logs from different first indexes ------------


def long_log():
    """Indexes 1-10; every command once, at its first copy."""
    return [
        *base_log(),  # 1 config, 2 noop, 3 c0:1, 4 c1:1, 5 c0:2
        entry(6, "c1:4"),
        entry(7, "c0:3"),
        entry(8, "c1:5"),
        entry(9, "c0:4"),
        entry(10, "checker:1"),
    ]


def long_history():
    history = base_history()
    history.ops += [
        op("c1:4", 0.8, 0.9, OK, index=6),
        op("c0:3", 0.8, 0.95, OK, index=7),
        op("c1:5", 1.0, 1.2, UNKNOWN),  # timed out, yet committed at 8
        op("c0:4", 1.3, 1.4, OK, index=9),
        op("checker:1", 1.5, 1.6, OK, index=10),
    ]
    return history


def long_applied():
    return ["c0:1", "c1:1", "c0:2", "c1:4", "c0:3", "c1:5", "c0:4", "checker:1"]


def sessions_of(log):
    """What the state machine keeps: the first copy of each command."""
    sessions = {}
    for e in log:
        if e["type"] == "command":
            client_id, seq = e["command"].split(":")
            sessions.setdefault((client_id, int(seq)), (e["index"], e["term"]))
    return sessions


# A holds the log from index 4, B from 6, C from 8: what a snapshot
# compacted is below each first index.
FIRSTS = {A: 4, B: 6, C: 8}


def compacted(log=None, firsts=FIRSTS):
    log = log if log is not None else long_log()
    return {s: [e for e in log if e["index"] >= f] for s, f in firsts.items()}


def check_compacted(history=None, logs=None, applied=None, sessions="default", **kw):
    log = long_log()
    history = history if history is not None else long_history()
    logs = logs if logs is not None else compacted(log)
    if applied is None:
        applied = {s: long_applied() for s in logs}
    if sessions == "default":
        sessions = {s: sessions_of(log) for s in logs}
    kw.setdefault("first_index", {s: FIRSTS.get(s, 1) for s in logs})
    return checker.check(history, logs, applied=applied, sessions=sessions, **kw)


def test_compacted_logs_that_agree_where_they_overlap_pass():
    assert check_compacted() == []


def test_compacted_logs_pass_without_sessions_too():
    """Then the acknowledgements and the least compacted log place the
    applied messages."""
    assert check_compacted(sessions=None) == []


def test_a_fully_compacted_log_is_checked_through_its_applied_state():
    logs = compacted()
    logs[C] = []
    firsts = {**FIRSTS, C: 11}
    assert check_compacted(logs=logs, first_index=firsts) == []
    applied = {s: long_applied() for s in logs}
    applied[C] = [m for m in long_applied() if m != "c0:4"]
    found = check_compacted(logs=logs, applied=applied, first_index=firsts)
    assert any(v.kind == checker.LOST and C in v.detail for v in found)


def test_a_lost_command_hidden_in_a_compacted_prefix_is_caught():
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = [m for m in long_applied() if m != "c0:1"]
    found = check_compacted(applied=applied)
    lost = [v for v in found if v.kind == checker.LOST]
    assert len(lost) == 1 and C in lost[0].detail and "'c0:1'" in lost[0].detail
    assert "compacted" in lost[0].detail
    assert checker.APPLIED_DIFFERS in kinds(found)


def test_a_command_lost_everywhere_below_every_first_index_is_caught():
    """Every log starts past it and no state machine applied it: only the
    applied state can tell, and it must."""
    applied = {s: [m for m in long_applied() if m != "c0:1"] for s in (A, B, C)}
    for sessions in ("default", None):
        found = check_compacted(applied=applied, sessions=sessions)
        lost = [v for v in found if v.kind == checker.LOST]
        assert len(lost) == 3, found


def test_an_unknown_command_missing_from_every_applied_tail_is_caught():
    """c1:5 (outcome unknown) is in every log but no state machine applied
    it: the tail of each applied list must be its log's commands."""
    applied = {s: [m for m in long_applied() if m != "c1:5"] for s in (A, B, C)}
    for sessions in ("default", None):
        found = check_compacted(applied=applied, sessions=sessions)
        tails = [v for v in found if v.kind == checker.APPLIED_TWICE]
        assert {s for s in (A, B, C) if any(s in v.detail for v in tails)} == {
            A,
            B,
            C,
        }, found


def test_an_applied_tail_cannot_hide_behind_the_compacted_prefix():
    """Messages applied out of the log's order where the log still holds
    them are caught, whatever the split between prefix and tail."""
    applied = long_applied()
    applied[5], applied[6] = applied[6], applied[5]  # c0:4 before c1:5
    found = check_compacted(applied={s: list(applied) for s in (A, B, C)})
    assert kinds(found) == {checker.APPLIED_TWICE}


def test_an_applied_prefix_out_of_order_is_caught():
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = ["c1:1", "c0:1", *long_applied()[2:]]  # compacted on C
    for sessions in ("default", None):
        found = check_compacted(applied=applied, sessions=sessions)
        assert checker.APPLIED_TWICE in kinds(found)
        assert checker.APPLIED_DIFFERS in kinds(found)


def test_a_divergence_in_the_overlap_is_caught():
    logs = compacted()
    logs[B] = [entry(e["index"], "c9:9", 2) if e["index"] == 7 else e for e in logs[B]]
    assert checker.DIVERGENCE in kinds(check_compacted(logs=logs))


def test_a_member_missing_an_index_past_its_first_index_diverges():
    logs = compacted()
    logs[C] = logs[C][:-1]  # C's log from 8 lacks 10
    found = check_compacted(logs=logs)
    assert any(v.kind == checker.DIVERGENCE and C in v.detail for v in found)


def test_a_gap_in_a_compacted_log_is_caught():
    logs = compacted()
    logs[A] = [e for e in logs[A] if e["index"] != 6]
    assert checker.GAP in kinds(check_compacted(logs=logs))


def test_a_log_that_does_not_start_at_its_first_index_is_a_gap():
    found = check_compacted(first_index={**FIRSTS, B: 5})
    assert any(v.kind == checker.GAP and B in v.detail for v in found)


def test_a_session_unlike_the_acknowledgement_is_caught():
    """The snapshot carries the sessions: a compacted command's answer is
    checked against them."""
    log = long_log()
    sessions = {s: sessions_of(log) for s in (A, B, C)}
    sessions[C][("c0", 1)] = (3, 2)
    found = check_compacted(sessions=sessions)
    assert checker.WRONG_INDEX in kinds(found)
    assert checker.APPLIED_DIFFERS in kinds(found)  # and unlike A's and B's


def test_answers_a_session_no_longer_keeps_are_no_violation():
    """A session keeps a bounded number of answers, the lowest seqs going
    first: the acknowledgements and the logs place those commands."""
    sessions = {s: sessions_of(long_log()) for s in (A, B, C)}
    for mine in sessions.values():
        del mine[("c0", 1)], mine[("c0", 2)]
    assert check_compacted(sessions=sessions) == []
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = ["c1:1", "c0:1", *long_applied()[2:]]  # still caught
    assert checker.APPLIED_TWICE in kinds(
        check_compacted(applied=applied, sessions=sessions)
    )


def test_a_session_no_client_made_is_a_phantom():
    log = long_log()
    sessions = {s: sessions_of(log) for s in (A, B, C)}
    sessions[A][("c7", 1)] = (2, 1)
    assert checker.PHANTOM in kinds(check_compacted(sessions=sessions))


def test_a_phantom_or_failed_command_in_the_applied_state_is_caught():
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = ["c9:1", *long_applied()]
    assert checker.PHANTOM in kinds(check_compacted(applied=applied, sessions=None))
    applied[C] = ["c1:2", *long_applied()]  # c1:2 failed definitely
    found = check_compacted(applied=applied, sessions=None)
    assert checker.FAILED_APPLIED in kinds(found)


def retried_compacted():
    """c0:2 sent twice: its first copy (5) compacted on B and C, its second
    (11) in every log; applied once, at the first."""
    history = long_history()
    history.ops[2].attempt = 0
    retry = op("c0:2", 1.7, 1.8, UNKNOWN)
    retry.attempt = 1
    history.ops.append(retry)
    log = [*long_log(), entry(11, "c0:2")]
    return history, log


def test_a_retry_whose_first_copy_was_compacted_is_applied_once():
    history, log = retried_compacted()
    sessions = {s: sessions_of(log) for s in (A, B, C)}
    found = check_compacted(history=history, logs=compacted(log), sessions=sessions)
    assert found == []


def test_a_copy_past_the_attempts_counts_a_compacted_first_copy():
    history, log = retried_compacted()
    history.ops.pop()  # one attempt only: two copies are one too many
    sessions = {s: sessions_of(log) for s in (A, B, C)}
    found = check_compacted(history=history, logs=compacted(log), sessions=sessions)
    duplicates = [v for v in found if v.kind == checker.DUPLICATE]
    assert {s for s in (A, B, C) if any(s in v.detail for v in duplicates)} == {
        A,
        B,
        C,
    }


def test_a_retry_applied_again_at_its_second_copy_is_caught():
    history, log = retried_compacted()
    sessions = {s: sessions_of(log) for s in (A, B, C)}
    applied = {s: [*long_applied(), "c0:2"] for s in (A, B, C)}
    found = check_compacted(
        history=history, logs=compacted(log), applied=applied, sessions=sessions
    )
    assert checker.APPLIED_TWICE in kinds(found)


def test_members_must_apply_the_same_messages_once_settled():
    applied = {s: long_applied() for s in (A, B, C)}
    applied[B] = long_applied()[:-1]
    found = check_compacted(applied=applied)
    assert any(v.kind == checker.APPLIED_DIFFERS and B in v.detail for v in found)


def test_a_removed_server_applied_a_prefix_of_the_members():
    logs = compacted()
    logs[C] = [e for e in logs[C] if e["index"] <= 9]  # removed after 9
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = long_applied()[:-1]
    assert check_compacted(logs=logs, applied=applied, members=[A, B]) == []
    applied[C] = ["c1:1", "c0:1", *long_applied()[2:-1]]
    found = check_compacted(logs=logs, applied=applied, members=[A, B])
    assert checker.APPLIED_DIFFERS in kinds(found)


def test_an_unsettled_compacted_cluster_is_checked_on_what_it_holds():
    """C lags (its log ends at 8, applied through 7) and started its log
    later: compared up to 8, its applied messages a prefix."""
    logs = compacted(firsts={A: 4, B: 6, C: 5})
    logs[C] = [e for e in logs[C] if e["index"] <= 8]
    applied = {s: long_applied() for s in (A, B, C)}
    applied[C] = long_applied()[:5]
    firsts = {A: 4, B: 6, C: 5}
    found = check_compacted(
        logs=logs, applied=applied, first_index=firsts, settled=False
    )
    assert found == []
    applied[C] = [m for m in long_applied()[:5] if m != "c0:1"]
    found = check_compacted(
        logs=logs, applied=applied, first_index=firsts, settled=False
    )
    assert checker.APPLIED_DIFFERS in kinds(found)


def test_realtime_places_a_compacted_unknown_command_by_its_session():
    """c1:5 (unknown) invoked after c0:4 was acknowledged at 9, yet its
    session puts it at 8, below every first index."""
    history = long_history()
    history.ops[-3].invoke = 1.45
    logs = compacted(firsts={A: 9, B: 9, C: 9})
    found = check_compacted(history=history, logs=logs, first_index={A: 9, B: 9, C: 9})
    assert kinds(found) == {checker.REALTIME}
