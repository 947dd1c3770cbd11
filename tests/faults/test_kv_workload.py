"""The key-value side of the fault workload without servers: how an HTTP
answer becomes a KvOp (kv_history's table), the history's JSON with and
without key-value operations, and the checker reporting what check_kv
finds."""

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from tests.faults import checker
from tests.faults.kv_history import (
    DELETE,
    FAIL,
    GET,
    LINEARIZABLE,
    NOT_FOUND,
    OK,
    PRECONDITION_FAILED,
    PUT,
    STALE,
    UNKNOWN,
    KvOp,
)
from tests.faults.test_checker import all_logs, base_history, kinds
from tests.faults.workload import History, perform_kv

A = "127.0.0.1:9001"


class FakeResponse:
    def __init__(self, status_code, body):
        self.status_code = status_code
        self.body = body

    def json(self):
        if self.body is None:
            raise ValueError("no JSON")
        return self.body


class FakeSession:
    """Answers every request with ``answer`` (a response or an exception)
    and keeps what was sent."""

    def __init__(self, answer):
        self.answer = answer
        self.sent = []

    def _request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def get(self, url, **kwargs):
        return self._request("GET", url, **kwargs)

    def put(self, url, **kwargs):
        return self._request("PUT", url, **kwargs)

    def delete(self, url, **kwargs):
        return self._request("DELETE", url, **kwargs)


def send(op, answer, **kwargs):
    session = FakeSession(answer)
    done = perform_kv(session, op, "http://x", (1.0, 1.0), **kwargs)
    return done, session.sent


READ = KvOp("kv0", GET, "fault/k0", 0.0)
WRITE = KvOp("kv0", PUT, "fault/k0", 0.0, value="kv0-1", request="kv0:1")
CAS_DELETE = KvOp("kv0", DELETE, "fault/k0", 0.0, prev_revision=7, request="kv0:2")
REFUSED = requests.ConnectionError(NewConnectionError(None, "refused"))


@pytest.mark.parametrize(
    "op, answer, expected",
    [
        (
            READ,
            FakeResponse(200, {"value": "a", "revision": 5, "applied_index": 9}),
            {"outcome": OK, "value": "a", "revision": 5, "applied_index": 9},
        ),
        (
            READ,
            FakeResponse(404, {"error": "not_found", "applied_index": 9}),
            {"outcome": NOT_FOUND, "applied_index": 9},
        ),
        (READ, FakeResponse(503, {"error": "unavailable"}), {"outcome": FAIL}),
        (READ, FakeResponse(504, {"error": "timeout"}), {"outcome": UNKNOWN}),
        (READ, requests.ReadTimeout(), {"outcome": UNKNOWN}),
        (READ, REFUSED, {"outcome": FAIL}),
        (
            WRITE,
            FakeResponse(200, {"key": "fault/k0", "value": "kv0-1", "revision": 12}),
            {"outcome": OK, "revision": 12, "value": "kv0-1"},
        ),
        (
            WRITE,
            FakeResponse(412, {"error": "precondition_failed", "current_revision": 4}),
            {"outcome": PRECONDITION_FAILED, "revision": 4},
        ),
        (WRITE, FakeResponse(400, {"error": "bad_request"}), {"outcome": FAIL}),
        (WRITE, FakeResponse(409, {"error": "conflict"}), {"outcome": UNKNOWN}),
        (WRITE, FakeResponse(502, None), {"outcome": UNKNOWN}),
        (WRITE, requests.ConnectionError("reset"), {"outcome": UNKNOWN}),
        (
            CAS_DELETE,
            FakeResponse(404, {"error": "not_found"}),
            {"outcome": NOT_FOUND},
        ),
        (
            CAS_DELETE,
            FakeResponse(200, {"key": "fault/k0", "revision": 13}),
            {"outcome": OK, "revision": 13},
        ),
    ],
)
def test_answers_map_to_outcomes_as_kv_history_says(op, answer, expected):
    done, _ = send(op, answer)
    for name, value in expected.items():
        assert getattr(done, name) == value, (name, done)


def test_writes_carry_their_session_pair_and_compare_and_set():
    _, sent = send(WRITE, FakeResponse(200, {"revision": 3}), client_id="kv0", seq=1)
    method, url, kwargs = sent[0]
    assert (method, url) == ("PUT", "http://x/api/kv/fault%2Fk0")
    assert kwargs["json"] == {"value": "kv0-1", "client_id": "kv0", "seq": 1}
    _, sent = send(
        CAS_DELETE, FakeResponse(200, {"revision": 3}), client_id="kv0", seq=2
    )
    method, _, kwargs = sent[0]
    assert method == "DELETE"
    assert kwargs["params"] == {"client_id": "kv0", "seq": 2, "prev_revision": 7}


def test_a_broken_read_path_sends_another_level_but_records_the_one_asked():
    done, sent = send(
        READ, FakeResponse(200, {"value": "a", "revision": 5}), send_consistency=STALE
    )
    assert sent[0][2]["params"] == {"consistency": STALE}
    assert done.consistency == LINEARIZABLE


def kv_history():
    """A put acknowledged at revision 6, then two reads of it."""
    history = base_history()
    history.kv_ops = [
        KvOp("kv0", PUT, "k", 0.0, 0.1, OK, value="kv0-1", revision=6,
             request="kv0:1", node=A),
        KvOp("kv1", GET, "k", 0.2, 0.3, OK, value="kv0-1", revision=6,
             applied_index=6, node=A),
        KvOp("kv1", GET, "k", 0.4, 0.5, OK, value="kv0-1", revision=6,
             consistency=STALE, applied_index=6, node=A),
    ]  # fmt: skip
    return history


def test_a_history_with_key_value_operations_round_trips(tmp_path):
    history = kv_history()
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded.kv_ops == history.kv_ops
    assert loaded.to_json() == history.to_json()


def test_a_history_saved_before_the_key_value_workload_loads():
    data = base_history().to_json()
    del data["kv_ops"]
    assert History.from_json(data).kv_ops == []


def test_a_linearizable_key_value_history_passes():
    # The put's session answer is the KV write's, not a phantom command.
    sessions = {server: {("kv0", 1): (6, 1)} for server in all_logs()}
    found = checker.check(kv_history(), all_logs(), sessions=sessions)
    assert found == []


def test_a_read_missing_an_acknowledged_put_is_nonlinearizable():
    history = kv_history()
    history.kv_ops.append(
        KvOp("kv1", GET, "k", 0.6, 0.7, NOT_FOUND, applied_index=3, node=A)
    )
    found = checker.check(history, all_logs())
    assert kinds(found) == {checker.NONLINEARIZABLE}
    (violation,) = found
    assert "nothing explains: kv1 get k -> not_found" in violation.detail


def test_a_stale_read_of_a_state_the_key_never_had_is_caught():
    history = kv_history()
    history.kv_ops.append(
        KvOp("kv1", GET, "k", 0.6, 0.7, OK, value="nobody", revision=6,
             consistency=STALE, node=A)
    )  # fmt: skip
    assert kinds(checker.check(history, all_logs())) == {checker.STALE_READ}


def test_a_search_out_of_steps_is_no_violation():
    """Unknown is not a failure: the run's report notes it."""
    history = kv_history()
    report = checker.check_kv_ops(history, max_steps=1)
    assert report.verdict == "unknown", str(report)
    assert checker.check(history, all_logs(), kv=report) == []
