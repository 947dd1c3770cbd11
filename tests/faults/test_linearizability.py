"""The key-value checker accepts small histories known to be linearizable,
rejects ones known not to be and says why, and accepts every history made
by running the model with random concurrency windows (while rejecting each
with one read's answer made impossible)."""

import itertools
import random

import pytest

from tests.faults.kv_history import (
    DELETE,
    FAIL,
    GET,
    LEADER,
    NOT_FOUND,
    OK,
    PRECONDITION_FAILED,
    PUT,
    STALE,
    UNKNOWN,
    KvOp,
    describe,
    merge_retries,
)
from tests.faults.kv_model import INITIAL, State, step
from tests.faults.linearizability import (
    INVALID,
    NONLINEARIZABLE,
    STALE_READ,
    UNKNOWN_VERDICT,
    VALID,
    check_key,
    check_kv,
)


def put(p, t0, t1, value, rev=None, outcome=OK, key="x", prev=None, request=None):
    return KvOp(
        p, PUT, key, t0, t1, outcome, value=value, prev_revision=prev,
        revision=rev, request=request,
    )  # fmt: skip


def get(p, t0, t1, value=None, rev=None, outcome=None, key="x", level="linearizable",
        applied=None, monotonic=False):  # fmt: skip
    if outcome is None:
        outcome = NOT_FOUND if value is None else OK
    return KvOp(
        p, GET, key, t0, t1, outcome, value=value, revision=rev,
        consistency=level, applied_index=applied, monotonic=monotonic,
    )  # fmt: skip


def delete(p, t0, t1, rev=None, outcome=OK, key="x", prev=None):
    return KvOp(p, DELETE, key, t0, t1, outcome, prev_revision=prev, revision=rev)


def lost(op):
    """The same operation with its answer lost (a timeout)."""
    return KvOp(**{**op.to_json(), "outcome": UNKNOWN, "complete": None})


LINEARIZABLE_HISTORIES = {
    "empty": [],
    "sequential put then get": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "a", 3),
    ],
    "read of an absent key": [get("c0", 0, 1)],
    "concurrent puts, a later read sees the higher revision": [
        put("c0", 0, 2, "a", 5),
        put("c1", 1, 3, "b", 4),
        get("c2", 4, 5, "a", 5),
    ],
    "reads during a put see before or after": [
        put("c0", 1, 5, "a", 3),
        get("c1", 0, 2),
        get("c2", 2, 3, "a", 3),
        get("c3", 3, 6, "a", 3),
    ],
    "a call and a return at one instant are concurrent": [
        put("c0", 0, 1, "a", 3),
        get("c1", 1, 2),
    ],
    "cas succeeds on the current revision": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5, prev=3),
        get("c1", 4, 5, "b", 5),
    ],
    "cas fails on another revision and changes nothing": [
        put("c0", 0, 1, "a", 3),
        put("c1", 2, 3, "b", 3, PRECONDITION_FAILED, prev=2),
        get("c2", 4, 5, "a", 3),
    ],
    "cas on absent: the first wins, the second fails": [
        put("c0", 0, 2, "a", 2, prev=0),
        put("c1", 1, 3, "b", 2, PRECONDITION_FAILED, prev=0),
        get("c2", 4, 5, "a", 2),
    ],
    "delete, read absent, delete again: 404": [
        put("c0", 0, 1, "a", 3),
        delete("c0", 2, 3, 4),
        get("c1", 4, 5),
        delete("c1", 6, 7, outcome=NOT_FOUND),
        put("c2", 8, 9, "b", 9, prev=0),
        get("c2", 10, 11, "b", 9),
    ],
    "cas-delete, then 412 0 or 404 on the absent key": [
        put("c0", 0, 1, "a", 3),
        delete("c0", 2, 3, 4, prev=3),
        delete("c1", 4, 5, 0, PRECONDITION_FAILED, prev=3),
        delete("c1", 6, 7, outcome=NOT_FOUND, prev=3),
        delete("c2", 8, 9, outcome=NOT_FOUND, prev=0),
    ],
    "cas-delete with prev 0 on a present key fails": [
        put("c0", 0, 1, "a", 3),
        delete("c1", 2, 3, 3, PRECONDITION_FAILED, prev=0),
        get("c1", 4, 5, "a", 3),
    ],
    "a lost put that happened": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3, "a", 7),
    ],
    "a lost put that never happened": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3),
        get("c1", 4, 5),
    ],
    "a lost put applied long after it was sent": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3),
        put("c2", 4, 5, "b", 6),
        get("c1", 6, 7, "b", 6),
        get("c1", 8, 9, "a", 11),
    ],
    "a lost put read, then overwritten": [
        put("c0", 0, 1, "a", 3),
        lost(put("c0", 2, 3, "b")),
        get("c1", 4, 5, "b", 6),
        put("c2", 6, 7, "c", 8, prev=6),
        get("c1", 8, 9, "c", 8),
    ],
    "a lost cas that happened": [
        put("c0", 0, 1, "a", 3),
        lost(put("c0", 2, 3, "b", prev=3)),
        get("c1", 4, 5, "b", 4),
    ],
    "a lost cas that did not": [
        put("c0", 0, 1, "a", 3),
        lost(put("c0", 2, 3, "b", prev=3)),
        put("c1", 4, 5, "c", 5, prev=3),
        get("c1", 6, 7, "c", 5),
    ],
    "a lost delete that happened": [
        put("c0", 0, 1, "a", 3),
        lost(delete("c0", 2, 3)),
        get("c1", 4, 5),
        put("c1", 6, 7, "c", 9, prev=0),
    ],
    "a failed put (503, nothing appended) never seen": [
        put("c0", 0, 1, "a", outcome=FAIL),
        get("c1", 2, 3),
    ],
    "a lost read is left out": [
        put("c0", 0, 1, "a", 3),
        KvOp("c1", GET, "x", 2, None, UNKNOWN),
    ],
    "keys are independent": [
        put("c0", 0, 1, "a", 3, key="x"),
        put("c0", 2, 3, "b", 4, key="y"),
        get("c1", 4, 5, "a", 3, key="x"),
        get("c1", 6, 7, "b", 4, key="y"),
    ],
    "a stale read of an earlier state": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "a", 3, level=STALE, applied=4),
        get("c1", 6, 7, level=STALE, applied=2),
    ],
    "a leader read behind (a deposed leader), checked as stale": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "a", 3, level=LEADER),
    ],
    "stale reads that go back, monotonic not asked": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "b", 5, level=STALE),
        get("c1", 6, 7, "a", 3, level=STALE),
    ],
    "monotonic stale reads absent after a delete": [
        put("c0", 0, 1, "a", 3),
        delete("c0", 2, 3, 5),
        get("c1", 4, 5, "a", 3, level=STALE, monotonic=True),
        get("c1", 6, 7, level=STALE, monotonic=True),
    ],
    "a stale read of a lost put": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3, "a", 8, level=STALE, applied=9),
    ],
    "a stale read absent at its applied index after a lost delete": [
        put("c0", 0, 1, "a", 3),
        lost(delete("c0", 2, 3)),
        get("c1", 4, 5, level=STALE, applied=6),
    ],
    "a retried write: a lost attempt and an answered one": [
        put("c0", 0, 1, "a", outcome=UNKNOWN, request="c0:1"),
        put("c0", 2, 3, "a", 4, request="c0:1"),
        get("c1", 1.5, 1.6, "a", 4),
    ],
}


@pytest.mark.parametrize(
    "history", LINEARIZABLE_HISTORIES.values(), ids=LINEARIZABLE_HISTORIES.keys()
)
def test_linearizable_history_passes(history):
    report = check_kv(history)
    assert report.verdict == VALID, str(report)
    assert report.violations() == []


NOT_LINEARIZABLE_HISTORIES = {
    "a read after a completed write sees the old value": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "a", 3),
    ],
    "a read after concurrent puts sees the lower revision": [
        put("c0", 0, 2, "a", 5),
        put("c1", 1, 3, "b", 4),
        get("c2", 4, 5, "b", 4),
    ],
    "a lost write": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3),
    ],
    "a value never written": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "z", 3),
    ],
    "a read of a put not yet sent": [
        get("c1", 0, 1, "a", 3),
        put("c0", 2, 3, "a", 3),
    ],
    "new then old while a put is in flight": [
        put("c0", 0, 10, "a", 3),
        get("c1", 1, 2, "a", 3),
        get("c1", 3, 4),
    ],
    "a read of the right value at the wrong revision": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "a", 4),
    ],
    "cas succeeds against a wrong revision": [
        put("c0", 0, 1, "a", 3),
        put("c1", 2, 3, "b", 5, prev=2),
    ],
    "cas fails naming a revision the key never had": [
        put("c0", 0, 1, "a", 3),
        put("c1", 2, 3, "b", 5, PRECONDITION_FAILED, prev=2),
    ],
    "a 412 naming the revision it asked for": [
        put("c0", 0, 1, "a", 3),
        put("c1", 2, 3, "b", 3, PRECONDITION_FAILED, prev=3),
    ],
    "a failed put (503, nothing appended) that a read sees": [
        put("c0", 0, 1, "a", outcome=FAIL),
        get("c1", 2, 3, "a", 3),
    ],
    "a cas answered 412 whose value is read": [
        put("c0", 0, 1, "a", 3),
        put("c1", 2, 3, "b", 3, PRECONDITION_FAILED, prev=2),
        get("c2", 4, 5, "b", 4),
    ],
    "a lost put read, then gone without a delete": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3, "a", 4),
        get("c1", 4, 5),
    ],
    "a lost put read at two revisions": [
        lost(put("c0", 0, 1, "a")),
        get("c1", 2, 3, "a", 4),
        get("c1", 4, 5, "a", 6),
    ],
    "revisions going down along real time": [
        put("c0", 0, 1, "a", 5),
        put("c0", 2, 3, "b", 4),
    ],
    "a deleted key read as present": [
        put("c0", 0, 1, "a", 3),
        delete("c0", 2, 3, 4),
        get("c1", 4, 5, "a", 3),
    ],
    "a delete answering 404 on a present key": [
        put("c0", 0, 1, "a", 3),
        delete("c1", 2, 3, outcome=NOT_FOUND),
    ],
    "a leader read behind, when leader reads must be linearizable": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "a", 3, level=LEADER),
    ],
}


@pytest.mark.parametrize(
    "history",
    NOT_LINEARIZABLE_HISTORIES.values(),
    ids=NOT_LINEARIZABLE_HISTORIES.keys(),
)
def test_non_linearizable_history_fails(history):
    report = check_kv(history, leader_reads_linearizable=True)
    assert report.verdict == INVALID, str(report)
    assert [v.kind for v in report.violations()] == [NONLINEARIZABLE]
    (failed,) = [r for r in report.keys if r.verdict == INVALID]
    assert "nothing explains: " in failed.explanation


STALE_READ_PROBLEMS = {
    "a stale read of a value never written": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "z", 3, level=STALE),
    ],
    "a stale read of a put sent after it answered": [
        get("c1", 0, 1, "a", 3, level=STALE),
        put("c0", 2, 3, "a", 3),
    ],
    "a stale read of a failed put": [
        put("c0", 0, 1, "a", outcome=FAIL),
        get("c1", 2, 3, "a", 3, level=STALE),
    ],
    "a stale read older than its applied index allows": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "a", 3, level=STALE, applied=6),
    ],
    "a stale read above its applied index": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "a", 3, level=STALE, applied=2),
    ],
    "a stale read absent though a put was applied": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, level=STALE, applied=3),
    ],
    "monotonic stale reads going back": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "b", 5, level=STALE, monotonic=True),
        get("c1", 6, 7, "a", 3, level=STALE, monotonic=True),
    ],
    "a monotonic stale read below a linearizable one before": [
        put("c0", 0, 1, "a", 3),
        put("c0", 2, 3, "b", 5),
        get("c1", 4, 5, "b", 5),
        get("c1", 6, 7, "a", 3, level=STALE, monotonic=True),
    ],
    "monotonic stale reads absent again, no delete": [
        put("c0", 0, 1, "a", 3),
        get("c1", 2, 3, "a", 3, level=STALE, monotonic=True),
        get("c1", 4, 5, level=STALE, monotonic=True),
    ],
}


@pytest.mark.parametrize(
    "history", STALE_READ_PROBLEMS.values(), ids=STALE_READ_PROBLEMS.keys()
)
def test_stale_read_problem_found(history):
    report = check_kv(history)
    assert report.verdict == INVALID
    assert [v.kind for v in report.violations()] == [STALE_READ], str(report)


def test_op_round_trips_through_json_and_refuses_unknown_kinds():
    op = put("c0", 0.5, 0.75, "a", 3, prev=0, request="c0:1")
    assert KvOp.from_json(op.to_json()) == op
    assert str(op) == "c0 cas-put x='a' if@0 -> ok @3 [0.500, 0.750]"
    with pytest.raises(ValueError):
        KvOp("c0", "cas", "x", 0.0)
    with pytest.raises(ValueError):
        KvOp("c0", PUT, "x", 0.0, outcome="timeout")


def test_answered_op_without_completion_is_refused():
    with pytest.raises(ValueError):
        check_key([put("c0", 0, None, "a", 3)])


def test_retry_answered_differently_is_reported():
    history = [
        put("c0", 0, 1, "a", 3, request="c0:1"),
        put("c0", 2, 3, "a", 4, request="c0:1"),
    ]
    merged, problems = merge_retries(history)
    assert len(merged) == 1 and merged[0].revision == 3
    assert len(problems) == 1 and "c0:1" in problems[0]
    assert check_kv(history).verdict == INVALID


def test_retry_folds_a_lost_attempt_and_a_503_into_unknown():
    """The first attempt may still apply whatever the second was told."""
    history = [
        put("c0", 0, 1, "a", outcome=UNKNOWN, request="c0:1"),
        put("c0", 2, 3, "a", outcome=FAIL, request="c0:1"),
    ]
    (merged,), _ = merge_retries(history)
    assert (merged.outcome, merged.invoke) == (UNKNOWN, 0)


def test_explanation_names_the_key_the_culprit_and_an_order():
    """The shortest failing prefix ends at the read nothing explains, even
    with a long linearizable tail after it."""
    culprit = get("c1", 4, 5, "a", 3)
    history = [put("c0", 0, 1, "a", 3), put("c0", 2, 3, "b", 5), culprit]
    history += [put("c2", 10 + i, 10.5 + i, f"v{i}", 10 + i) for i in range(20)]
    (result,) = check_kv(history).keys
    assert result.verdict == INVALID
    text = str(result)
    assert text.startswith("key 'x': not_linearizable")
    assert f"nothing explains: {describe(culprit)}" in text
    assert "given the 3 operations invoked before it" in text
    assert "'b' @5" in text  # the state the longest order leaves
    assert "v19" not in text


def test_explanation_hints_at_a_value_never_written():
    history = [put("c0", 0, 1, "a", 3), get("c1", 2, 3, "z", 4)]
    (result,) = check_kv(history).keys
    assert "no put of 'z' was invoked before it completed" in result.explanation


def test_step_budget_gives_unknown():
    """A small budget stops the search before it can tell."""
    history = random_history(random.Random(5), 200, window=40)
    history = [op for op in history if op.key == "x" and op.consistency != STALE]
    result = check_key(history, max_steps=100)
    assert result.verdict == UNKNOWN_VERDICT
    assert "gave up after 100 steps" in result.explanation
    assert check_key(history).verdict == VALID


def test_read_of_a_value_never_written_fails_even_past_the_budget():
    """Many concurrent lost puts make every subset an order to try; a read
    that no put explains still fails at once."""
    history = [lost(put(f"c{i}", 0, 1, f"v{i}")) for i in range(16)]
    history.append(get("r", 2, 3, "z", 99))
    result = check_key(history, max_steps=1000)
    assert result.verdict == INVALID
    assert "nothing explains: r get x -> ok 'z' @99" in result.explanation
    assert "no put of 'z' was invoked before it completed" in result.explanation
    assert "gave up after 1000 steps" in result.explanation


# Randomised histories: the model run in a random order, each operation
# given a window around its linearisation point.

KEYS = ("x", "y")
LOST_P = 0.1  # a write's answer lost (it applied or not, half and half)
FAIL_P = 0.05  # a write refused with nothing appended


def random_history(rng: random.Random, n_ops: int, window: float = 4.0):
    """``n_ops`` operations, one linearised per second in the model, each
    called up to ``window`` seconds before and answered up to ``window``
    after; lost and refused answers among them. Linearizable by
    construction."""
    states = {key: INITIAL for key in KEYS}
    past = {key: [INITIAL] for key in KEYS}  # every state, for stale reads
    index, history = 0, []
    for n in range(n_ops):
        point = float(n)
        key = rng.choice(KEYS)
        state = states[key]
        invoke = point - rng.uniform(0, window)
        complete = point + rng.uniform(0, window)
        kind = rng.choice((PUT, PUT, GET, GET, GET, DELETE))
        process = f"c{n % 5}"
        if kind == GET:
            level = STALE if rng.random() < 0.2 else "linearizable"
            seen = rng.choice(past[key]) if level == STALE else state
            value = seen.value if seen.present else None
            rev = seen.revision if seen.present else None
            history.append(get(process, invoke, complete, value, rev, key=key,
                               level=level))  # fmt: skip
            continue
        prev = None
        if rng.random() < 0.3:
            current = state.revision if state.present else 0
            prev = current if rng.random() < 0.6 else rng.randrange(0, index + 2)
        index += rng.randint(1, 3)  # the log holds other keys' entries too
        value = f"v{n}" if kind == PUT else None
        op = KvOp(process, kind, key, invoke, complete, OK, value=value,
                  prev_revision=prev, revision=index)  # fmt: skip
        after = step(state, op)
        if after is None:
            # Refused by the model: the answer it would give instead.
            current = state.revision if state.present else 0
            holds = prev is None or prev == current
            outcome = NOT_FOUND if holds else PRECONDITION_FAILED
            op = KvOp(**{**op.to_json(), "outcome": outcome,
                         "revision": None if holds else current})  # fmt: skip
            assert step(state, op) == state
        roll = rng.random()
        if after is not None and roll < LOST_P:
            op = lost(op)
            if rng.random() < 0.5:
                after = None  # lost before it was appended
        elif roll < LOST_P + FAIL_P:
            op = KvOp(**{**op.to_json(), "outcome": FAIL, "revision": None})
            after = None
        if after is not None:
            states[key] = after
            past[key].append(after)
        history.append(op)
    return history


def never_written(history, rng):
    """The history with one linearizable read's answer made a value no put
    ever wrote, and that read; None if it has no such read."""
    reads = [
        i
        for i, op in enumerate(history)
        if op.kind == GET and op.consistency == "linearizable"
    ]
    if not reads:
        return None, None
    i = rng.choice(reads)
    bad = KvOp(**{**history[i].to_json(), "outcome": OK, "value": "never",
                  "revision": 10_000})  # fmt: skip
    return history[:i] + [bad] + history[i + 1 :], bad


def wrong_revision(history, rng):
    """The history with one read of an acknowledged put's value given
    another revision: values are unique, so only that put wrote it."""
    writers = {op.value: op for op in history if op.kind == PUT and op.outcome == OK}
    reads = [
        i
        for i, op in enumerate(history)
        if op.kind == GET and op.outcome == OK and op.value in writers
        and op.consistency == "linearizable"
    ]  # fmt: skip
    if not reads:
        return None, None
    i = rng.choice(reads)
    bad = KvOp(**{**history[i].to_json(), "revision": history[i].revision + 1})
    return history[:i] + [bad] + history[i + 1 :], bad


SEEDS = range(200)


def test_random_model_runs_pass_and_mutations_fail():
    mutated = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        history = random_history(rng, rng.randint(5, 40))
        report = check_kv(history)
        assert report.verdict == VALID, f"seed {seed}:\n{report}"
        for mutate in (never_written, wrong_revision):
            bad_history, bad = mutate(history, rng)
            if bad_history is None:
                continue
            mutated += 1
            report = check_kv(bad_history)
            assert report.verdict == INVALID, f"seed {seed} {mutate.__name__}"
            (result,) = [r for r in report.keys if r.verdict == INVALID]
            assert (
                f"nothing explains: {describe(bad)}" in result.explanation
            ), f"seed {seed} {mutate.__name__}:\n{result}"
    assert mutated > len(SEEDS)


def test_random_stale_read_of_a_value_never_written_fails():
    for seed in range(100):
        rng = random.Random(seed)
        history = random_history(rng, 30)
        stale = [i for i, op in enumerate(history) if op.consistency == STALE]
        if not stale:
            continue
        i = rng.choice(stale)
        history[i] = KvOp(**{**history[i].to_json(), "outcome": OK,
                             "value": "never", "revision": 1})  # fmt: skip
        report = check_kv(history)
        kinds = [v.kind for v in report.violations()]
        assert kinds == [STALE_READ], f"seed {seed}:\n{report}"


def test_long_random_histories_pass_in_few_steps():
    """Fault-run sized, a few hundred operations per key, and far more
    concurrent than a handful of clients make: the reduction of reads and
    the ceilings keep the search near linear (it took over a million
    steps without them)."""
    for seed in range(2):
        rng = random.Random(1000 + seed)
        history = random_history(rng, 1000, window=40)
        report = check_kv(history)
        assert report.verdict == VALID, f"seed {seed}:\n{report}"
        assert max(result.steps for result in report.keys) < 20_000
        bad_history, bad = never_written(history, rng)
        report = check_kv(bad_history)
        assert report.verdict == INVALID, f"seed {seed}"
        assert f"nothing explains: {describe(bad)}" in str(report)


def test_model_state_prints_for_people():
    assert str(State(True, "a", 3)) == "'a' @3"
    assert str(State(False, None, 4, exact=False)) == "absent @>=4"


# An oracle for tiny histories: every subset of the lost writes, in every
# order real time allows, stepped through the model.


def brute_force_linearizable(history) -> bool:
    searched = [
        op
        for op in history
        if op.outcome != FAIL and not (op.kind == GET and op.outcome == UNKNOWN)
    ]
    required = [op for op in searched if op.outcome != UNKNOWN]
    lost_writes = [op for op in searched if op.outcome == UNKNOWN]
    for size in range(len(lost_writes) + 1):
        for chosen in itertools.combinations(lost_writes, size):
            for order in itertools.permutations(required + list(chosen)):
                if in_real_time(order) and accepted(order):
                    return True
    return False


def in_real_time(order) -> bool:
    return not any(
        later.outcome != UNKNOWN and later.complete < earlier.invoke
        for n, earlier in enumerate(order)
        for later in order[n + 1 :]
    )


def accepted(order) -> bool:
    state = INITIAL
    for op in order:
        state = step(state, op)
        if state is None:
            return False
    return True


def random_tiny_history(rng: random.Random):
    """Operations with answers drawn at random, most of them impossible."""
    history = []
    for n in range(rng.randint(1, 6)):
        invoke = rng.uniform(0, 10)
        complete = invoke + rng.uniform(0, 4)
        kind = rng.choice((PUT, PUT, GET, GET, DELETE))
        prev = rng.choice((None, None, 0, 1, 2, 3))
        outcome = rng.choice((OK, OK, OK, NOT_FOUND, PRECONDITION_FAILED, UNKNOWN))
        value = rng.choice("ab")
        if kind == GET:
            prev = None
            outcome = rng.choice((OK, OK, NOT_FOUND, UNKNOWN))
        elif kind == DELETE:
            value = None
        elif outcome == NOT_FOUND:
            outcome = OK
        revision = None
        if outcome == OK:
            revision = rng.randint(1, 4)
        elif outcome == PRECONDITION_FAILED:
            revision = rng.randint(0, 4)
        if kind == GET and outcome != OK:
            value = None
        if outcome == UNKNOWN:
            complete = None
        history.append(
            KvOp(f"c{n}", kind, "x", invoke, complete, outcome, value=value,
                 prev_revision=prev, revision=revision)
        )  # fmt: skip
    return history


def test_search_agrees_with_brute_force_on_tiny_histories():
    """The search with all its pruning, the revision inference and the
    reduction of reads, against every order of every tiny history."""
    verdicts = {VALID: 0, INVALID: 0}
    for seed in range(1000):
        rng = random.Random(seed)
        history = random_tiny_history(rng)
        expected = VALID if brute_force_linearizable(history) else INVALID
        result = check_key(history)
        assert result.verdict == expected, (
            f"seed {seed}: expected {expected}:\n"
            + "\n".join(describe(op) for op in history)
            + f"\n{result}"
        )
        verdicts[expected] += 1
    assert min(verdicts.values()) > 100, verdicts


def perturbed(history, rng: random.Random):
    """A model run's operations on one key with, half the time, one answer
    changed a little: near the line between linearizable and not."""
    ops = [op for op in history if op.key == "x" and op.consistency != STALE]
    if ops and rng.random() < 0.5:
        i = rng.randrange(len(ops))
        changes = {
            "revision": (ops[i].revision or 0) + rng.choice((-1, 1)),
            "value": rng.choice(("v0", "v1", "v2")),
            "invoke": ops[i].invoke - 3,
        }
        field = rng.choice(sorted(changes))
        ops[i] = KvOp(**{**ops[i].to_json(), field: changes[field]})
    return ops


def test_search_agrees_with_brute_force_near_model_runs():
    verdicts = {VALID: 0, INVALID: 0}
    for seed in range(1000):
        rng = random.Random(seed)
        history = perturbed(random_history(rng, rng.randint(2, 12)), rng)
        if len(history) > 7:
            continue
        expected = VALID if brute_force_linearizable(history) else INVALID
        result = check_key(history)
        assert result.verdict == expected, (
            f"seed {seed}: expected {expected}:\n"
            + "\n".join(describe(op) for op in history)
            + f"\n{result}"
        )
        verdicts[expected] += 1
    assert min(verdicts.values()) > 50, verdicts
